"""Textual screens and widgets of nydus-top (installed as ``nydus_top.screens``)."""
