"""The Streamlit dashboard: pages in app_pages/, loaders in data.py, actions in actions.py."""
