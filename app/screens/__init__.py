"""Pages kept as modules: imported once per process, while a page script is compiled again on every
rerun by Streamlit's AppTest. The scripts in app/views/ call them."""
