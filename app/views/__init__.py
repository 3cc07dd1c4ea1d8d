"""The dashboard's pages, one module each (runs, embeddings, neurons, layers, compare, mechanisms, upload), with
the helper modules of a page named after it (embeddings_search, compare_multiples, ...).

Every page module exposes ``page()``; app/main.py declares them all the same way, ``st.Page("views/NAME.py",
url_path="NAME")``, and Streamlit runs the file as a script, whose last lines call ``page()``. Importing a page
module (as the tests do) draws nothing. The folder is not called ``pages``: beside main.py, Streamlit would take
it for an old automatic multipage app (tests/test_architecture.py, test_no_pages_folder_beside_the_entry_point).
"""
