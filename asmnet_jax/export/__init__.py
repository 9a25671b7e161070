"""Export of the BN-folded network to StableHLO and ONNX.

    python -m asmnet_jax.export --workdir DIR --out OUT

Modules: `signature` (the exported function's inputs and outputs), `stablehlo`
(`jax.export` serialization), `onnx` (a jaxpr -> ONNX translator; the `onnx`
package, in the `export` extra, is imported only when a graph is built), `bundle`
(the files of an export directory, their metadata and checks), `__main__` (the
command line).
"""

from asmnet_jax.export.bundle import FORMATS, METADATA_FILE, ONNX_FILE, STABLEHLO_FILE
from asmnet_jax.export.bundle import check_exports, metadata, write_exports
from asmnet_jax.export.onnx import jaxpr_to_onnx, to_onnx
from asmnet_jax.export.signature import image_spec
from asmnet_jax.export.stablehlo import export_stablehlo, load_stablehlo

__all__ = [
    "FORMATS", "METADATA_FILE", "ONNX_FILE", "STABLEHLO_FILE", "check_exports",
    "export_stablehlo", "image_spec", "jaxpr_to_onnx", "load_stablehlo", "metadata",
    "to_onnx", "write_exports",
]
