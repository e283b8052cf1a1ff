"""Clip features, backbones, the taste function, its fit and the GPU tasks."""
