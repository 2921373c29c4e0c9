"""The files cyto writes — crop store, run directory — and the synthetic cell atlas (no torch).

Each on-disk format has its owner here; every other layer reads and writes it through
that owner."""

from cyto.data._embeddings import (
    EMBEDDING_FORMAT,
    Embeddings,
    EmbeddingsWriter,
    LazyRows,
    export_h5ad,
)
from cyto.data._outputs import (
    OutputError,
    check_output,
    kind_of,
    output_folder,
    same_file,
    write_marker,
)
from cyto.data._rundir import RunDir
from cyto.data._store import (
    CHANNEL_NAMES,
    COMPRESSIONS,
    FORMAT_VERSION,
    CropStore,
    CropStoreWriter,
    check_channels,
    write_crop_store,
)
from cyto.data.synthetic import (
    SyntheticAtlasConfig,
    SyntheticField,
    SyntheticProtein,
    generate_atlas,
    list_families,
    make_catalog,
    make_field,
)

__all__: list[str] = [
    "CHANNEL_NAMES",
    "COMPRESSIONS",
    "EMBEDDING_FORMAT",
    "FORMAT_VERSION",
    "CropStore",
    "CropStoreWriter",
    "Embeddings",
    "EmbeddingsWriter",
    "LazyRows",
    "OutputError",
    "RunDir",
    "SyntheticAtlasConfig",
    "SyntheticField",
    "SyntheticProtein",
    "check_channels",
    "check_output",
    "export_h5ad",
    "generate_atlas",
    "kind_of",
    "list_families",
    "make_catalog",
    "make_field",
    "output_folder",
    "same_file",
    "write_crop_store",
    "write_marker",
]
