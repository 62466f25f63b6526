"""mobilefer's FER2013 models as ONNX files in ``weights/`` (data only); mobilefer.runtime.refs
finds them by name."""
