"""A short video made from one photo: a virtual camera that pans and zooms over it.

    python -m asmnet_jax.tools.pan_zoom PHOTO OUT.mp4 [--seconds 3] [--fps 30]
        [--zoom 1.6] [--pan 0.25] [--width 640] [--height 480]

The camera starts on the whole photo (fitted into the frame, cropped to its aspect)
and moves smoothly (smoothstep) to `zoom` times closer, its centre shifted by `pan`
of the photo's width to the right; each frame is one bilinear affine warp of the
photo (`cv2.warpAffine`), so a face moves and grows across the frames as with a
real camera moving. A real-image check for the tracker (`predict.py OUT.mp4`).
"""

from __future__ import annotations

import sys
from typing import Sequence

import cv2
import numpy as np
from absl import flags

from asmnet_jax import cli
from asmnet_jax.data import images


def pan_zoom_frames(photo: np.ndarray, num_frames: int, width: int, height: int,
                    zoom: float, pan: float) -> list[np.ndarray]:
  """uint8 (height, width, 3) RGB frames of the camera path (module doc)."""
  h, w = photo.shape[:2]
  base = max(width / w, height / h)  # fills the frame at the start.
  frames = []
  for k in range(num_frames):
    u = k / max(num_frames - 1, 1)
    s = u * u * (3.0 - 2.0 * u)
    scale = base * (1.0 + (zoom - 1.0) * s)
    centre = np.array([w / 2.0 + pan * w * s, h / 2.0])
    # Keep the view inside the photo.
    half = np.array([width, height]) / (2.0 * scale)
    centre = np.clip(centre, half, np.array([w, h]) - half)
    # Output pixel-centre p -> photo point centre + (p + 0.5 - size / 2) / scale - 0.5.
    offset = centre - 0.5 - (np.array([width, height]) / 2.0 - 0.5) / scale
    to_photo = np.array([[1.0 / scale, 0.0, offset[0]], [0.0, 1.0 / scale, offset[1]]])
    frames.append(cv2.warpAffine(photo, to_photo, (width, height),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REPLICATE))
  return frames


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_float("seconds", 3.0, "Length.", lower_bound=0.1, flag_values=fv)
  flags.DEFINE_float("fps", 30.0, "Frames per second.", lower_bound=1.0, flag_values=fv)
  flags.DEFINE_float("zoom", 1.6, "Final zoom over the start.", lower_bound=1.0, flag_values=fv)
  flags.DEFINE_float("pan", 0.25, "Horizontal move of the view centre, photo widths.",
                     flag_values=fv)
  flags.DEFINE_integer("width", 640, "Frame width.", lower_bound=16, flag_values=fv)
  flags.DEFINE_integer("height", 480, "Frame height.", lower_bound=16, flag_values=fv)


def _run(fv: flags.FlagValues, args: list[str]) -> None:
  if len(args) != 2:
    raise cli.UsageError("usage: pan_zoom PHOTO OUT.mp4")
  with cli.reported(images.ImageLoadError):
    photo = images.load_image(args[0])
  frames = pan_zoom_frames(photo, int(round(fv.seconds * fv.fps)), fv.width, fv.height,
                           fv.zoom, fv.pan)
  writer = cv2.VideoWriter(args[1], cv2.VideoWriter_fourcc(*"mp4v"), fv.fps,
                           (fv.width, fv.height))
  if not writer.isOpened():
    raise cli.CommandError(f"{args[1]}: OpenCV cannot write an MP4 (mp4v) video here")
  try:
    for frame in frames:
      writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  finally:
    writer.release()
  print(f"wrote {args[1]}: {len(frames)} frames of {fv.width}x{fv.height} at {fv.fps:g} fps")


def main(argv: Sequence[str] | None = None) -> int:
  return cli.run(define_flags, _run, argv, positional="PHOTO OUT.mp4")


if __name__ == "__main__":
  sys.exit(main())
