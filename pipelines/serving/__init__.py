"""The HTTP model server that goes into the image.

It imports nothing from the rest of ``pipelines`` except through ``runtime`` (numpy and LiteRT
only), so the image carries this folder alone, with no TensorFlow, pandas or GX.
"""
