"""U-Net training and comparisons: runs, predictions, metrics, pages."""
