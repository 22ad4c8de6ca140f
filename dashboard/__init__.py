"""The Streamlit dashboard: pages in app_pages/, cached loaders in data.py, actions in actions.py."""
