"""Glue between CRSLab's own datasets/systems and this plugin's evaluation."""
