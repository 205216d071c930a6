"""Reading arrays from ``.npy``, ``.npz`` and raw files a block of rows at a time.

Nothing here maps or loads a whole file. A block is either mapped from the file on its own
(``map_elements``: the array lies on the page cache's pages, with no copy) or read into a
caller-owned buffer with ``os.preadv`` (or, for a deflated ``.npz`` member, from the
decompressed stream), so resident memory is a block or its buffer whatever the file size.
"""

from __future__ import annotations

import dataclasses
import math
import mmap
import os
import struct
import zipfile
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["EvalError", "ArrayFile", "open_array", "parse_dtype"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


class EvalError(Exception):
    """A problem with the input that the command reports in one line (exit code 2)."""


def parse_dtype(name: str) -> np.dtype[Any]:
    """A NumPy dtype from its name; ``bfloat16`` through ml_dtypes."""
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise EvalError(
                "bfloat16 needs the ml_dtypes package (pip install ml_dtypes)"
            ) from None
        bf16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return bf16
    try:
        return np.dtype(name)
    except TypeError:
        raise EvalError(f"unknown dtype {name!r}") from None


@dataclasses.dataclass
class ArrayFile:
    """Where an array's elements lie: a C-ordered block of ``shape`` x ``dtype`` bytes."""

    label: str  # how messages name it: the path, or "path:member"
    path: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    offset: int  # of the first element, in the file (seekable) or the stream
    zip_member: str | None = None  # set for a deflated .npz member, read as a stream
    _fd: int | None = None
    _stream: IO[bytes] | None = None
    _stream_pos: int = 0
    _unmappable: bool = False
    _null: int | None = None  # /dev/null, the sink _load sends pages to (-1: unavailable)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def seekable(self) -> bool:
        return self.zip_member is None

    def open(self) -> None:
        if self.zip_member is None:
            self._fd = os.open(self.path, os.O_RDONLY)
            if hasattr(os, "posix_fadvise"):
                # Tell the kernel the file is read front to back: larger read-ahead.
                os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        else:
            zf = zipfile.ZipFile(self.path)
            self._stream = zf.open(self.zip_member)
            self._stream_pos = 0
            self._skip(self.offset)

    def close(self) -> None:
        if self._null is not None and self._null >= 0:
            os.close(self._null)
        self._null = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _skip(self, nbytes: int) -> None:
        assert self._stream is not None
        scratch = bytearray(min(nbytes, 1 << 20) or 1)
        while nbytes > 0:
            got = self._stream.readinto(memoryview(scratch)[: min(nbytes, len(scratch))])  # type: ignore[attr-defined]
            if not got:
                raise EvalError(f"{self.label}: file is truncated")
            nbytes -= got
            self._stream_pos += got

    def map_elements(self, start: int, count: int) -> NDArray[Any] | None:
        """The ``count`` elements from flat index ``start`` on as a read-only array over the
        file's own pages: for a file in the page cache no byte is copied, where a read copies
        every one. The block stays mapped while the array (or a view of it) lives.

        None when the file cannot be mapped (a compressed member; elements not aligned for
        their type, as a stored ``.npz`` member's may be; a file system without mmap):
        ``read_elements`` then fills a buffer instead."""
        isz = self.dtype.itemsize
        if self._fd is None or self._unmappable or self.offset % isz:
            return None
        pos = self.offset + start * isz
        length = count * isz
        # A mapped page beyond the end of a file cut short since it was opened would kill
        # the process (SIGBUS) when read, where a read reports it.
        if os.fstat(self._fd).st_size < pos + length:
            raise EvalError(f"{self.label}: file is truncated")
        base = pos - pos % mmap.ALLOCATIONGRANULARITY
        try:
            block = mmap.mmap(
                self._fd, pos + length - base, mmap.MAP_SHARED, mmap.PROT_READ, offset=base
            )
        except (OSError, ValueError):
            self._unmappable = True
            return None
        self._load(pos, length)
        return np.frombuffer(block, dtype=self.dtype, count=count, offset=pos - base)

    def _load(self, pos: int, length: int) -> None:
        """Bring bytes [pos, pos + length) of the file into the page cache, and wait for them.

        ``map_elements`` is called a chunk ahead, from the thread that prefetches: reading
        the chunk here lets the disk work while the chunk before is computed on. Left to the
        page faults of the kernel's threads, each chunk would be read only once it is
        computed on, and the time of the disk and of the computation would add up
        (``python benchmarks/bench_eval.py``, uncached: 1.39x a plain read that way).
        ``posix_fadvise(WILLNEED)`` does not do it: Linux caps it at the read-ahead window,
        a few hundred kilobytes. ``sendfile`` to ``/dev/null`` reads the pages without
        copying them anywhere and without holding the GIL; where it is refused, ``preadv``
        into a small scratch buffer does the same with a copy."""
        end = pos + length
        if self._null is None and hasattr(os, "sendfile"):
            try:
                self._null = os.open(os.devnull, os.O_WRONLY)
            except OSError:
                self._null = -1
        assert self._fd is not None
        while pos < end and self._null is not None and self._null >= 0:
            try:
                sent = os.sendfile(self._null, self._fd, pos, min(end - pos, 1 << 30))
            except OSError:
                break
            if sent == 0:
                break  # end of file: preadv below says so
            pos += sent
        scratch = memoryview(bytearray(min(end - pos, 1 << 20))) if pos < end else None
        while pos < end and scratch is not None:
            got = os.preadv(self._fd, [scratch[: end - pos]], pos)
            if got == 0:  # cut short since map_elements checked its size
                raise EvalError(f"{self.label}: file is truncated")
            pos += got

    def read_elements(self, out: memoryview, start: int) -> None:
        """Fill ``out`` (bytes) with the elements from flat index ``start`` on."""
        pos = self.offset + start * self.dtype.itemsize
        total = len(out)
        done = 0
        if self._fd is not None:
            while done < total:
                got = os.preadv(self._fd, [out[done:]], pos + done)
                if got == 0:
                    raise EvalError(f"{self.label}: file is truncated")
                done += got
            return
        assert self._stream is not None
        if pos < self._stream_pos:
            raise EvalError(
                f"{self.label}: a compressed .npz member can only be read front to back, "
                "and this layout needs it read out of order; store it uncompressed "
                "(np.savez, not np.savez_compressed) or with the class axis last"
            )
        self._skip(pos - self._stream_pos)
        while done < total:
            got = self._stream.readinto(out[done:])  # type: ignore[attr-defined]
            if not got:
                raise EvalError(f"{self.label}: file is truncated")
            done += got
        self._stream_pos += total


def _read_npy_header(f: IO[bytes], label: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            return fmt.read_array_header_1_0(f)
        if version == (2, 0):
            return fmt.read_array_header_2_0(f)
        return fmt._read_array_header(f, version)  # type: ignore[attr-defined,no-any-return]
    except (ValueError, OSError, SyntaxError) as exc:
        raise EvalError(f"{label}: not a readable .npy header ({exc})") from None


def _check_header(
    label: str,
    shape: tuple[int, ...],
    fortran: bool,
    dtype: np.dtype[Any],
    dtype_override: np.dtype[Any] | None,
) -> np.dtype[Any]:
    if fortran and len(shape) > 1:
        raise EvalError(
            f"{label}: Fortran-ordered array; rows cannot be streamed from it "
            "(save it with np.ascontiguousarray, or pass it transposed with --class-axis)"
        )
    if dtype.hasobject:
        raise EvalError(f"{label}: object arrays are not supported (they need pickle)")
    if dtype_override is not None and dtype_override != dtype:
        # Only a header that does not name its type (ml_dtypes' bfloat16 saves as V2) can
        # be read as another type; anything else would silently reinterpret the bytes.
        if dtype.kind != "V" or dtype_override.itemsize != dtype.itemsize:
            raise EvalError(
                f"{label}: --dtype {dtype_override} does not match the file's {dtype.str} "
                f"({dtype.itemsize}-byte) elements"
            )
        return dtype_override
    if dtype.kind == "V":
        hint = " (ml_dtypes saves bfloat16 that way: pass --dtype bfloat16)"
        raise EvalError(
            f"{label}: elements of unnamed type {dtype.str}" + (hint if dtype.itemsize == 2 else "")
        )
    return dtype


def _check_size(label: str, path: str, offset: int, nbytes: int) -> None:
    have = os.path.getsize(path) - offset
    if have < nbytes:
        raise EvalError(
            f"{label}: file is truncated: the header promises {nbytes} bytes of data, "
            f"the file holds {have}"
        )


def _npz_member(path: str, member: str | None, prefer: str, label: str) -> tuple[str, str]:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise EvalError(f"{label}: not a readable .npz file ({exc})") from None
    with zf:
        arcnames = zf.namelist()
    names = [n[:-4] if n.endswith(".npy") else n for n in arcnames]
    if member is None:
        if len(names) == 1:
            member = names[0]
        elif prefer in names:
            member = prefer
        else:
            raise EvalError(
                f"{label}: holds {len(names)} arrays ({', '.join(names)}); name one as {path}:NAME"
            )
    if member not in names:
        raise EvalError(f"{label}: no array named {member!r} (it holds {', '.join(names)})")
    return member, member + ".npy" if member + ".npy" in arcnames else member


def open_array(
    spec: str,
    *,
    prefer_member: str,
    raw_shape: tuple[int, ...] | None,
    raw_dtype: np.dtype[Any] | None,
    dtype_override: np.dtype[Any] | None = None,
) -> ArrayFile:
    """Describe the array in ``spec``: ``file.npy``, ``file.npz`` or ``file.npz:NAME``, or a
    raw file when ``raw_dtype`` is given (``raw_shape`` None: inferred from the file size
    later by the caller)."""
    path, member = spec, None
    if not os.path.exists(path) and ":" in spec:
        head, _, tail = spec.rpartition(":")
        if os.path.exists(head):
            path, member = head, tail
    if not os.path.exists(path):
        raise EvalError(f"{spec}: no such file")
    if os.path.isdir(path):
        raise EvalError(f"{spec}: is a directory, not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise EvalError(f"{spec}: cannot be read ({exc.strerror})") from None

    if magic.startswith(_ZIP_MAGIC):
        name, arcname = _npz_member(path, member, prefer_member, spec)
        label = f"{path}:{name}"
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(arcname)
            if info.compress_type == zipfile.ZIP_STORED:
                with open(path, "rb") as f:
                    f.seek(info.header_offset)
                    fields = _ZIP_LOCAL_HEADER.unpack(f.read(_ZIP_LOCAL_HEADER.size))
                    start = info.header_offset + _ZIP_LOCAL_HEADER.size + fields[9] + fields[10]
                    f.seek(start)
                    shape, fortran, dtype = _read_npy_header(f, label)
                    offset = f.tell()
                dtype = _check_header(label, shape, fortran, dtype, dtype_override)
                arr = ArrayFile(label, path, shape, dtype, offset)
                if offset - start + arr.nbytes > info.file_size:
                    raise EvalError(f"{label}: member is truncated")
                return arr
            with zf.open(arcname) as stream:
                shape, fortran, dtype = _read_npy_header(stream, label)
                offset = stream.tell()
        dtype = _check_header(label, shape, fortran, dtype, dtype_override)
        return ArrayFile(label, path, shape, dtype, offset, zip_member=arcname)

    if member is not None:
        raise EvalError(f"{spec}: {path} is not an .npz file, so it has no member {member!r}")
    if magic == _NPY_MAGIC:
        with open(path, "rb") as f:
            shape, fortran, dtype = _read_npy_header(f, spec)
            offset = f.tell()
        dtype = _check_header(spec, shape, fortran, dtype, dtype_override)
        arr = ArrayFile(spec, path, shape, dtype, offset)
        _check_size(spec, path, offset, arr.nbytes)
        return arr

    if raw_dtype is None:
        raise EvalError(
            f"{spec}: not a NumPy file (.npy or .npz); for raw binary give --shape and --dtype"
        )
    nbytes = os.path.getsize(path)
    if raw_shape is None:
        if nbytes % raw_dtype.itemsize:
            raise EvalError(
                f"{spec}: raw file of {nbytes} bytes is not a whole number of {raw_dtype} elements"
            )
        raw_shape = (nbytes // raw_dtype.itemsize,)
    arr = ArrayFile(spec, path, raw_shape, raw_dtype, 0)
    if arr.nbytes != nbytes:
        raise EvalError(
            f"{spec}: raw file holds {nbytes} bytes, but shape {raw_shape} of {raw_dtype} "
            f"needs {arr.nbytes}"
        )
    return arr
