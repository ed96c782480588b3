"""Files in the table warehouse, wherever it is: the state directory or an S3 bucket (MinIO).

Metadata faults, catalog backups and re-registration handle ``*.metadata.json`` files by
their locations (``file:///…`` or ``s3://bucket/…``, as the catalog records them); this
module gives them one set of file operations over pyarrow's file systems.

Example::

    warehouse = Warehouse("s3://warehouse", {"s3.endpoint": "http://127.0.0.1:19000", ...})
    for entry in warehouse.files(Warehouse.parent(table.metadata_location), ".metadata.json"):
        print(entry.location, entry.mtime_s)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlsplit

import pyarrow.fs as pafs


@dataclass(frozen=True)
class FileEntry:
    location: str
    name: str
    mtime_s: float


def metadata_version(name: str) -> int:
    """The version number a ``00012-<uuid>.metadata.json`` name starts with (-1 if none)."""
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else -1


class Warehouse:
    def __init__(self, location: str, properties: dict[str, str] | None = None) -> None:
        self.location = location.rstrip("/")
        self._properties = properties or {}

    @property
    def is_local(self) -> bool:
        return self.location.startswith("file:")

    @cached_property
    def _s3(self) -> pafs.S3FileSystem:
        endpoint = urlsplit(self._properties.get("s3.endpoint", ""))
        return pafs.S3FileSystem(
            access_key=self._properties.get("s3.access-key-id"),
            secret_key=self._properties.get("s3.secret-access-key"),
            region=self._properties.get("s3.region", "us-east-1"),
            endpoint_override=endpoint.netloc or None,
            scheme=endpoint.scheme or "https",
            force_virtual_addressing=self._properties.get("s3.force-virtual-addressing") == "true",
        )

    def _resolve(self, location: str) -> tuple[pafs.FileSystem, str]:
        parts = urlsplit(location)
        if parts.scheme in ("", "file"):
            return pafs.LocalFileSystem(), parts.path
        if parts.scheme in ("s3", "s3a"):
            return self._s3, f"{parts.netloc}{parts.path}"
        raise ValueError(f"unsupported warehouse location {location!r}: expected file:// or s3://")

    @staticmethod
    def parent(location: str) -> str:
        return location.rsplit("/", 1)[0]

    @staticmethod
    def join(directory: str, name: str) -> str:
        return f"{directory.rstrip('/')}/{name}"

    def files(self, directory: str, suffix: str = "") -> list[FileEntry]:
        """Files directly in ``directory`` whose names end with ``suffix``; none if it is missing."""
        fs, path = self._resolve(directory)
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        found = []
        for info in infos:
            if info.type != pafs.FileType.File or not info.base_name.endswith(suffix):
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else 0.0
            found.append(FileEntry(self.join(directory, info.base_name), info.base_name, mtime))
        return found

    def metadata_files(self, directory: str) -> list[FileEntry]:
        """``*.metadata.json`` files in ``directory``, oldest first."""
        entries = self.files(directory, ".metadata.json")
        return sorted(entries, key=lambda e: (metadata_version(e.name), e.mtime_s))

    def exists(self, location: str) -> bool:
        fs, path = self._resolve(location)
        return bool(fs.get_file_info(path).type == pafs.FileType.File)

    def read_bytes(self, location: str) -> bytes:
        fs, path = self._resolve(location)
        with fs.open_input_stream(path) as stream:
            data: bytes = stream.read()
        return data

    def write_bytes(self, location: str, data: bytes) -> None:
        fs, path = self._resolve(location)
        if fs.type_name == "local":
            fs.create_dir(self.parent(path), recursive=True)
        with fs.open_output_stream(path) as stream:
            stream.write(data)

    def delete(self, location: str) -> None:
        fs, path = self._resolve(location)
        fs.delete_file(path)
