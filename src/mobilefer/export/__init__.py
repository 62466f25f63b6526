"""ONNX export, INT8 quantisation and the PyTorch-free runtime."""
