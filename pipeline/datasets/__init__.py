"""Datasets: cases, images and labels; NIfTI import (files, manifests, uploads, the API); volume bytes."""
