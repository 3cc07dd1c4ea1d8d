"""The run configuration's sections as frozen dataclasses, with their commented defaults (docs/config.md).

Loading, overriding, serialising and validating them is :mod:`backend.config`'s, which re-exports these
names: import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SynthClustConfig:
    """The thesis's synthetic clustered data (SCIENCE.md section 4, chapter 3 settings)."""

    dim: int = 500  # input dimension
    classes: int = 2
    clusters_per_class: int = 15
    active_per_centroid: int = 5  # non-overlapping active coordinates per binary centroid
    train_per_cluster: int = 500
    test_per_cluster: int = 200
    noise: float = 0.4  # std of the Gaussian noise added to a centroid
    test_noise: float = 0.0  # [P] std of the test samples' noise; 0: the same as noise (SCIENCE.md 4 does not say)
    seed: int = 0  # the data are generated from this seed, independent of train.seed


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"  # digits | synthclust | mnist | fashion-mnist | cifar10 | cifar100 | imagefolder
    root: str = ""  # folder of the local files (file-based data sets only)
    download: bool = False  # fetch the files through torchvision's download path if missing
    target: str = "superclass"  # train on "label" (fine classes) or "superclass" labels
    image_size: int = 32  # imagefolder: images are resized to image_size x image_size
    channels: int = 3  # imagefolder: 1 (grayscale) or 3 (RGB)
    superclass_map: str = ""  # imagefolder: CSV or JSON file mapping class -> superclass
    test_fraction: float = 0.2  # imagefolder without train/ and test/ subfolders
    # Train on fewer examples: keep this many training examples per fine label (0 = all), drawn with
    # subset_seed (not train.seed, so runs that differ in their seed still share their data). Less data
    # lowers test accuracy and spreads it across settings, as the thesis's study needs (SCIENCE.md 3.2).
    train_per_label: int = 0
    subset_seed: int = 0
    synthclust: SynthClustConfig = field(default_factory=SynthClustConfig)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "mlp"  # mlp | vgg | resnet | tv:<torchvision model name>, e.g. tv:resnet18
    depth: int = 2  # mlp: hidden layers; resnet: total depth 6n+2 (20, 32, 56, ...)
    width: int = 128  # mlp: units per hidden layer
    stages: int = 3  # vgg: stages of convolutions, 2x2 max pooling between stages
    convs_per_stage: int = 2  # vgg
    width_factor: float = 1.0  # vgg: 32*2^s channels per stage; resnet: 16/32/64 channels; times this
    batch_norm: bool = True  # batch norm before every ReLU
    dropout: float = 0.0  # dropout rate after hidden layers (mlp) / before the classifier (vgg)
    input_dropout: float = 0.0  # mlp: dropout on the inputs (the thesis's SynthClust intervention, SCIENCE.md finding 9)
    activation: str = "relu"  # mlp: "relu", or "linear" for the thesis's no-ReLU ablation (SCIENCE.md finding 8)
    bias: bool = True  # mlp: biases in the linear layers (the thesis's SynthClust MLP has none)


@dataclass(frozen=True)
class LabelScheduleConfig:
    """Train on other labels than the true ones for some epochs ([train.labels], docs/config.md).

    Keys are fine labels (SynthClust clusters, the hidden subclasses); values are training targets
    (classes when ``data.target = "superclass"``). Predictions and test metrics stay against the true
    targets (docs/store.md, "Label schedules"). Both parts are off by default.
    """

    relabel: tuple[int, ...] = ()  # a planted event: these fine labels' training examples are trained as relabel_to
    relabel_to: int = 0  # the target they get
    relabel_from: int = 1  # from this (1-based) training epoch on, to the end
    random_epochs: int = 0  # epochs 1..N train on a random target per fine label, drawn from random_seed; then the true ones
    random_seed: int = 0  # (the thesis's "pre-training on randomly relabelled clusters", SCIENCE.md finding 9)


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "sgd"  # sgd (with momentum) | adam | layca-sgd | layca-adam (SCIENCE.md 3.3)
    lr: float = 0.05
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    weight_decay_style: str = "torch"  # "torch": + wd*w on every parameter; "keras_l2": + 2*wd*w on kernels only (thesis)
    batch_size: int = 128
    epochs: int = 20
    lr_steps: tuple[int, ...] = ()  # epochs after which the learning rate is multiplied by lr_factor
    lr_factor: float = 0.2  # the thesis's step factor (SCIENCE.md section 4)
    augment: bool = False  # crop+flip for 32x32 images, +-1 pixel shifts for digits
    early_stop_loss: float = 0.0  # stop once the epoch's training loss falls below this (0 = off)
    divergence_patience: int = 0  # epochs in a row with a non-finite loss tolerated before the run stops as diverged
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    layca_alpha: float = 0.0  # layca-*: layer-wise rate multiplier in [-1, 1]; < 0 first layers rotate faster
    labels: LabelScheduleConfig = field(default_factory=LabelScheduleConfig)  # [train.labels]: relabelled epochs


@dataclass(frozen=True)
class SnapshotConfig:
    epochs: tuple[int, ...] = ()  # epochs to record; empty = the default schedule
    layers: tuple[str, ...] = ()  # probe-able layers to record; empty = all
    reduction: str = "max"  # conv channels -> one value: "max" (thesis) or "mean"
    probe_train: int = 5000  # stratified probe samples from the training split (all if fewer)
    probe_test: int = 2000  # and from the test split
    probe_seed: int = 0  # fixed by default, so runs on the same data set share one probe set
    batch_size: int = 512  # forward batch size while recording
    checkpoints: bool = True  # save checkpoints/epoch=NNNN.pt at every snapshot epoch, and at epoch 0 always


@dataclass(frozen=True)
class DynamicsConfig:
    """Neuron-level training dynamics (SCIENCE.md 3.4): every ``every`` iterations, one forward and
    one backward pass on a fixed probe batch of training samples records the pre-activations of the
    chosen units and the sign of dLoss/d(activation) per sample. Off by default."""

    enabled: bool = False
    every: int = 10  # iterations between recordings (thesis: 10 on MNIST, 100 on CIFAR, 1 on SynthClust)
    probe_size: int = 600  # stratified training samples in the probe batch (all if fewer)
    probe_seed: int = 0
    layers: tuple[str, ...] = ()  # probe-able layers to record; empty = all
    units: int = 50  # N units of each layer (thesis: 50 neurons); 0 = every unit
    select: str = "top_outgoing"  # which N: "top_outgoing" (largest outgoing-weight norm at the end, the thesis's;
    #                               mlp and vgg, the training replayed to record them) or "first"


@dataclass(frozen=True)
class AnalysisConfig:
    """What `clusterscope analyze` computes per (layer, epoch) snapshot. Choices marked [P] are
    SCIENCE.md's proposals (section 3.5 and 3.4), kept visible and changeable here."""

    auto: bool = True  # analyse automatically when training (or the demo) ends
    input: str = "post_relu"  # [P] 3.5: embed/cluster post-ReLU values; "pre" = pre-activations
    preprocess: bool = True  # [P] 3.5: c4's preprocessing (drop dead, z-score, subtract percentile, ReLU)
    pca_components: int = 50  # UMAP runs on this many PCA components
    n_neighbors: int = 30  # [P] 3.5; small keeps local detail, large keeps global structure
    metric: str = "cosine"  # [P] 3.5
    min_dist: float = 0.1  # 2-D display layout: larger spreads points out for reading
    umap_epochs: int = 200  # layout optimisation epochs per UMAP fit (umap-learn: 500 below 10k points,
    #                         200 above; 200 gives the same trustworthiness on our snapshots at 40 % of the time)
    cluster_space: str = "umap"  # [P] 3.5: HDBSCAN on a 10-D "umap" or "pca" of the layer
    cluster_dims: int = 10
    cluster_epochs: int = 150  # [P] epochs of the 10-D clustering fit; 0 = umap_epochs. 150 costs 3/4 of 200 at a
    #                            subclass ARI ~0.02 lower on 100 fine clusters (seed-level); 100 loosens them (benchmarks/README.md)
    change_space: str = "pca"  # [P] 7: neighbourhood change among the neighbours in the analysis's "pca" space (its
    #                            pca_components; 27 s -> 3 s per 10,000 x 512 snapshot) or the "full" analysed matrix
    min_cluster_size: int = 0  # [P] 3.5: 0 = max(10, median subclass size / 4)
    min_samples: int = 5  # [P] 3.5
    aligned: bool = True  # initialise each epoch's 2-D layout from the previous epoch, then Procrustes-align
    #                       (not AlignedUMAP: benchmarks/aligned.py, embed.align_to)
    trust_k: int = 10  # trustworthiness neighbourhood (scikit-learn)
    trust_samples: int = 2000  # trustworthiness is estimated on at most this many samples
    hap_quantile: float = 0.99  # [P] 3.4 high-activation purity quantile (0.9, 0.99, 0.995 in the spec)
    k_c1: int = 30  # thesis value (SCIENCE.md 3.1)
    k_c3: int = 30  # thesis value
    k_c2: int = 0  # layers; 0 = 5 for ResNets (thesis) else 1 (reference code)
    k_c4: int = 0  # layers; 0 = 5 for ResNets, 1 for VGG and MLP (thesis)
    layer_top_k: int = 5  # layer-wise c1/c3: top neurons of the layer (thesis Fig. 2.6)
    c4_upper_triangle: bool = True  # [P] std over distinct pairs; false = the code's std with the diagonal
    c4_max_per_class: int = 1000  # [P] subsample per class for c4's pairwise distances
    max_samples: int = 100000  # stratified cap on the samples embedded and clustered (all of them up to 100,000)
    device: str = "cpu"  # cpu | auto: the analysis runs on the CPU; "auto" will take a GPU once the GPU path has
    #                      run on one (branch gpu-analysis; docs/config.md, "Devices")
    seed: int = 0
    # Representation geometry (SCIENCE.md 7): CKA, neural collapse, k-NN accuracy, probe, TwoNN
    geometry: bool = True  # compute them (layers table columns, analysis/cka.parquet); false saves their time
    cka_batch: int = 0  # [P] 7: 0 = closed-form linear CKA; else the unbiased minibatch estimator, this batch size
    cka_max_samples: int = 2000  # [P] 7: CKA on a seeded stratified subset of at most this many embedded samples (0 = all);
    #                              per pair of 512-unit layers 0.06 s CPU at 2,000 samples, 0.14 s at 10,000 (+0.04/0.25 s a side)
    cka_debiased: bool = True  # [P] 7: the closed form with the debiased HSIC (Song et al. 2012; ~0 for unrelated
    #                            representations); false = the biased one, ~d/(n + d) for them (0.2: 512 units, 2,000 samples)
    cka_max_epochs: int = 20  # [P] 7: epoch x epoch CKA of a layer between every two of at most this many evenly spaced
    #                           epochs (first and last kept; 0 = all); every other epoch against the last only
    probe_space: str = "pca"  # [P] 7: the linear probe on the analysis's PCA components ("pca") or the layer ("full")
    # c0 and the sharpness baselines (SCIENCE.md 3.1, 3.2), from the checkpoints and the training split.
    # Their own parameters: changing one redoes analysis/baselines.parquet only (pipeline.BASELINE_KEYS).
    baselines: bool = True  # compute c0, sigma', sigma'', alpha', alpha'' (needs checkpoints)
    baselines_over_training: bool = False  # at every checkpoint epoch; false = the last one only
    c0_pairs: int = 50  # pairs per subclass and kind (same / other subclass); reference: every sample of the subclass
    sharpness_samples: int = 500  # training samples per accuracy estimate; reference: 10 % of the training set
    sharpness_draws: int = 3  # noise draws averaged per scale for sigma; reference: 10
    sharpness_steps: int = 8  # bisection steps on the scale; reference: up to 20 (resolution 2^-steps of the bound)
    sharpness_ascent_steps: int = 10  # projected gradient-ascent steps per scale for alpha; reference: 250 (5 x 50)
    sharpness_target: float = 0.9  # the accuracy the perturbed model must keep (reference: 90 %)


@dataclass(frozen=True)
class RunConfig:
    run_id: str = ""  # empty = generated from data set, model and time
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)


# --------------------------------------------------------------------------------------------
# Loading and overriding
