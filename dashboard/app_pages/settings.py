import streamlit as st

st.title("Settings")
