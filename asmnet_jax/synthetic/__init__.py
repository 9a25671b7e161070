"""Building blocks of the synthetic face renderer; the API is `asmnet_jax.synthetic.faces`.

  config.py  `RenderConfig`: what a render samples.
  shape.py   the 3D head: landmark groups, face mesh template, identity and
             expression deformations.
  draw.py    camera, painter's-algorithm primitives, polygon helpers, background.
  render.py  one face: scene sampling (shape, pose, framing), appearance, drawing
             of each part, occluders and image degradations.
"""
