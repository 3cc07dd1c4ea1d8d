"""The Embeddings page script (st.navigation runs this file): the page is app/screens/embeddings.py.

The page's code lives in a module, imported once per process: it reruns on every move of the epoch
slider, and a script would be compiled again on each rerun under Streamlit's AppTest
(benchmarks/dashboard.py).
"""

from app.screens.embeddings import page

page()
