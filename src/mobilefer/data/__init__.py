"""Dataset readers (folder, zip, FER2013 CSV), image decoding and preprocessing."""
