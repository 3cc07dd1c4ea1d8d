"""ClusterScope's Streamlit dashboard. It imports only ``backend.api`` from the backend."""
