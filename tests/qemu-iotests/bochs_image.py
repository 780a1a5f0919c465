#!/usr/bin/env python3
"""Writes Bochs growing disk images for the bochs driver's tests (standard library only).

  bochs_image.py OUT [KEY=VALUE...]

The layout is the Bochs project's "Redolog"/"Growing" format: a 512-byte header
(magic, type, subtype, version, header size, then catalog entries, bitmap size,
extent size, for version 2 a reserved word, and the disk size), the catalog at
the header size (a little-endian 32-bit slot number per extent, 0xffffffff for
none), then the slots, each a bitmap padded to whole sectors followed by the
extent's sectors. Keys (numbers may be hex, or
have a k, M, G or T suffix):

  catalog=0,u,1    slot of each extent, u: unallocated (default: none)
  entries=N        catalog entry count written in the header (default: the list's)
  extent=BYTES     extent size (default 4096)
  bitmap=BYTES     bitmap size (default: one bit per sector, at least 1 byte)
  disk=BYTES       disk size (default: entries * extent)
  version=1|2|N    1 and 2 are 0x10000 and 0x20000, else the raw value (default 2)
  header=BYTES     header size field, where the catalog starts (default 512)
  magic=, type=, subtype=   header strings (defaults: Bochs's)
  bits=HEX;HEX...  each slot's bitmap bytes as hex (default: every sector set);
                   a shorter string leaves the rest clear
  slots=N          slots written (default: the highest slot in the catalog + 1)
  truncate=BYTES   cut (or extend) the file to this length at the end
  expect=FILE      also write the disk's contents as the format defines them

Sector j of slot s is filled with the byte 1 + (37 * s + j) % 255; sectors whose
bit is clear hold the byte 0xee, which must never be read.
"""
import struct
import sys

SECTOR = 512
UNALLOCATED = 0xffffffff


def parse(argv):
    opts = {}
    for arg in argv:
        key, _, value = arg.partition('=')
        opts[key] = value
    return opts


def to_int(text):
    """A number, hex with 0x, or with a k/M/G/T suffix (binary units)."""
    units = {'k': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
    if text and text[-1] in units:
        return int(text[:-1], 0) * units[text[-1]]
    return int(text, 0)


def num(opts, key, default):
    return to_int(opts[key]) if key in opts else default


def sector_byte(slot, sector):
    return 1 + (37 * slot + sector) % 255


def main():
    out = sys.argv[1]
    opts = parse(sys.argv[2:])
    catalog = []
    if opts.get('catalog'):
        for c in opts['catalog'].split(','):
            catalog.append(UNALLOCATED if c == 'u' else int(c, 0))
    entries = num(opts, 'entries', len(catalog))
    extent = num(opts, 'extent', 4096)
    extent_sectors = max(extent // SECTOR, 1)
    bitmap = num(opts, 'bitmap', max(extent_sectors // 8, 1))
    disk = num(opts, 'disk', entries * extent)
    version = {'1': 0x10000, '2': 0x20000}.get(opts.get('version', '2'))
    if version is None:
        version = int(opts['version'], 0)
    header_size = num(opts, 'header', SECTOR)
    used = [c for c in catalog if c != UNALLOCATED]
    slots = num(opts, 'slots', max(used) + 1 if used else 0)
    bits = opts['bits'].split(';') if opts.get('bits') else []

    hdr = bytearray(SECTOR)
    hdr[0:32] = opts.get('magic', 'Bochs Virtual HD Image').encode().ljust(32, b'\0')[:32]
    hdr[32:48] = opts.get('type', 'Redolog').encode().ljust(16, b'\0')[:16]
    hdr[48:64] = opts.get('subtype', 'Growing').encode().ljust(16, b'\0')[:16]
    struct.pack_into('<II', hdr, 64, version, header_size & 0xffffffff)
    if version == 0x10000:
        struct.pack_into('<IIIQ', hdr, 72, entries & 0xffffffff, bitmap & 0xffffffff,
                         extent & 0xffffffff, disk & (2**64 - 1))
    else:
        struct.pack_into('<IIIIQ', hdr, 72, entries & 0xffffffff, bitmap & 0xffffffff,
                         extent & 0xffffffff, 0, disk & (2**64 - 1))

    # (offset, bytes) pieces, written with seeks: far offsets make sparse files
    pieces = [(0, bytes(hdr))]
    pieces.append((header_size, b''.join(struct.pack('<I', c) for c in catalog)))
    # a 32-bit sum, as QEMU reads it: a header size near 4 GiB wraps around
    data_offset = (header_size + 4 * entries) % 2**32
    bitmap_bytes = ((bitmap - 1) // SECTOR + 1) * SECTOR
    stride = bitmap_bytes + extent

    slot_bits = []
    for s in range(slots):
        if s < len(bits):
            b = bytes.fromhex(bits[s])
        else:
            b = b'\xff' * ((extent_sectors + 7) // 8)
        slot_bits.append(b)
        # the bitmap's padding is left a hole: a hostile size can be 4 GiB
        pieces.append((data_offset + s * stride, b[:bitmap_bytes]))
        body = bytearray()
        for j in range(extent_sectors):
            present = j // 8 < len(b) and (b[j // 8] >> (j % 8)) & 1
            body += bytes([sector_byte(s, j) if present else 0xee]) * SECTOR
        pieces.append((data_offset + s * stride + bitmap_bytes, bytes(body)))

    with open(out, 'wb') as f:
        for offset, data in pieces:
            f.seek(offset)
            f.write(data)
        if 'truncate' in opts:
            f.truncate(to_int(opts['truncate']))

    if 'expect' in opts:
        with open(opts['expect'], 'wb') as f:
            for sector in range(disk // SECTOR):
                index, j = divmod(sector, extent_sectors)
                # entries past the list are the zeros the file holds there
                s = catalog[index] if index < len(catalog) else 0
                if s == UNALLOCATED or s >= slots:
                    f.write(bytes(SECTOR))
                    continue
                b = slot_bits[s]
                present = j // 8 < len(b) and (b[j // 8] >> (j % 8)) & 1
                f.write(bytes([sector_byte(s, j)]) * SECTOR if present else bytes(SECTOR))


if __name__ == '__main__':
    main()
