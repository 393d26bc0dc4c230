"""What every trainer shares (no Django): atomic checkpoints, per-epoch seeds, config parsing."""
