"""Building blocks of the synthetic face renderer; the API is `asmnet_jax.synthetic.faces`.

  config.py  `RenderConfig`: what a render samples.
  shape.py   the 3D head: landmark groups, face mesh template, identity and
             expression deformations.
  draw.py    camera, painter's-algorithm primitives, polygon helpers, background.
  render.py  one face: scene sampling (shape, pose, framing, labels), appearance,
             drawing of each part, occluders and image degradations (cartoon style).
  photo.py   the "photo" style: the same scene, per-pixel shaded (`PHOTO_CONFIG`).
  raster.py  the z-buffered NumPy triangle rasteriser of the photo style.
  backgrounds.py, camera.py  natural backdrops and camera effects (photo style).
"""
