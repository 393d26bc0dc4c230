"""Files in and out (no Django): bounded NIfTI reading, atomic writing, manifests, file-name guesses, names."""
