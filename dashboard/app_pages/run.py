import streamlit as st

st.title("Run")
