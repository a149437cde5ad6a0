"""Streamlit code of the what-if UI (app.py imports it by path; sizer/ never imports it)."""
