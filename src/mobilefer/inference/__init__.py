"""Face detection, emotion classification of faces, video/stream sources and drawing."""
