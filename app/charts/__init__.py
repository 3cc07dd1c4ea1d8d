"""Pure figure builders: DataFrames and arrays in, Plotly figures out, no Streamlit (tests/test_architecture.py).

``base``: the house palette, fonts, template and axes, and the probe samples' labels; one module per page
(``compare``, ``embeddings``, ``layers``, ``mechanisms``, ``neurons``) and ``multiples`` (the Compare page's
side-by-side embeddings)."""
