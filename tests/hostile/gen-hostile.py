#!/usr/bin/env python3
"""Hostile qcow2 images: a valid small image built here, then damaged one way
per case (python3 stdlib only).

  gen-hostile.py OUTDIR [NAME..] writes OUTDIR/NAME.qcow2 for every case (or
                                 those named) and OUTDIR/MANIFEST (one
                                 "NAME<TAB>what" per line)
  gen-hostile.py --list          prints the cases

The base image: version 3, 4 KiB clusters, 16-bit refcounts, 1 MiB virtual:
cluster 0 header, 1 refcount table, 2 refcount block, 3 L1 table, 4 L2 table,
5 a data cluster (guest offset 0, pattern 0x5a), all refcount 1, COPIED set.
Each case must give a clear error or be handled: never a crash, a hang or
unbounded memory (iotest 209 runs them under the sanitizers too).
"""

import os
import struct
import sys

CS = 4096
MAGIC = 0x514649fb
COPIED = 1 << 63
COMPRESSED = 1 << 62

HDR = struct.Struct('>IIQIIQIIQQIIQQQQII')   # the 104 bytes of a v3 header
FIELDS = ['magic', 'version', 'backing_file_offset', 'backing_file_size',
          'cluster_bits', 'size', 'crypt_method', 'l1_size', 'l1_table_offset',
          'refcount_table_offset', 'refcount_table_clusters', 'nb_snapshots',
          'snapshots_offset', 'incompatible_features', 'compatible_features',
          'autoclear_features', 'refcount_order', 'header_length']


def base_header():
    return dict(magic=MAGIC, version=3, backing_file_offset=0, backing_file_size=0,
                cluster_bits=12, size=1 << 20, crypt_method=0, l1_size=1,
                l1_table_offset=3 * CS, refcount_table_offset=1 * CS,
                refcount_table_clusters=1, nb_snapshots=0, snapshots_offset=0,
                incompatible_features=0, compatible_features=0, autoclear_features=0,
                refcount_order=4, header_length=112)


class Image:
    def __init__(self):
        self.h = base_header()
        self.ext = []            # (magic, bytes)
        self.backing = None
        self.buf = bytearray(6 * CS)
        self.put64(1 * CS, 2 * CS)                       # reftable[0] -> refblock
        for c in range(6):
            struct.pack_into('>H', self.buf, 2 * CS + 2 * c, 1)
        self.put64(3 * CS, (4 * CS) | COPIED)            # L1[0] -> L2
        self.put64(4 * CS, (5 * CS) | COPIED)            # L2[0] -> data
        self.buf[5 * CS:6 * CS] = b'\x5a' * CS
        self.end_marker = True
        self.raw_header = None

    def put64(self, off, v):
        struct.pack_into('>Q', self.buf, off, v & (2**64 - 1))

    def put32(self, off, v):
        struct.pack_into('>I', self.buf, off, v & (2**32 - 1))

    def render(self):
        b = self.buf
        widths = HDR.format.lstrip('>')
        hdr = bytearray(HDR.pack(*[self.h[f] & (2**64 - 1 if w == 'Q' else 2**32 - 1)
                                   for f, w in zip(FIELDS, widths)]))
        hdr += b'\0' * 8                                 # compression type + padding
        off = len(hdr)
        for magic, data in self.ext:
            hdr += struct.pack('>II', magic, len(data)) + data
            hdr += b'\0' * (-len(data) % 8)
        if self.end_marker:
            hdr += b'\0' * 8
        if self.backing is not None:
            name = self.backing.encode() if isinstance(self.backing, str) else self.backing
            struct.pack_into('>QI', hdr, 8, len(hdr), len(name))
            hdr += name
        if self.raw_header is not None:
            hdr = self.raw_header
        b[0:len(hdr)] = hdr
        return bytes(b)


CASES = []


def case(what):
    def deco(fn):
        CASES.append((fn.__name__, what, fn))
        return fn
    return deco


# ---- header ----

@case('the valid base image (control)')
def valid(img):
    return img


@case('file holds only 20 header bytes')
def truncated_20(img):
    return img.render()[:20]


@case('file holds 71 header bytes (short of a version 2 header)')
def truncated_71(img):
    return img.render()[:71]


@case('file ends right after the header cluster')
def truncated_1cluster(img):
    return img.render()[:CS]


@case('version 1')
def version_1(img):
    img.h['version'] = 1


@case('version 4')
def version_4(img):
    img.h['version'] = 4


@case('cluster_bits 8 (below the minimum)')
def cluster_bits_8(img):
    img.h['cluster_bits'] = 8


@case('cluster_bits 31')
def cluster_bits_31(img):
    img.h['cluster_bits'] = 31


@case('cluster_bits 0xffffffff')
def cluster_bits_huge(img):
    img.h['cluster_bits'] = 0xffffffff


@case('header_length odd (105)')
def header_length_odd(img):
    img.h['header_length'] = 105


@case('header_length larger than a cluster')
def header_length_large(img):
    img.h['header_length'] = CS + 8


@case('header_length 0xffffffff')
def header_length_huge(img):
    img.h['header_length'] = 0xffffffff


@case('header_length below 104')
def header_length_small(img):
    img.h['header_length'] = 72


@case('refcount_order 7 (128-bit refcounts)')
def refcount_order_7(img):
    img.h['refcount_order'] = 7


@case('refcount_order 0 (1-bit), the data cluster still referenced twice')
def refcount_order_0(img):
    img.h['refcount_order'] = 0
    img.put64(4 * CS + 8, (5 * CS) | COPIED)


@case('encryption method 1 (AES)')
def crypt_aes(img):
    img.h['crypt_method'] = 1


@case('unknown incompatible feature bits, with a feature table naming some')
def unknown_incompat(img):
    img.h['incompatible_features'] = (1 << 5) | (1 << 40)
    img.ext.append((0x6803f857, struct.pack('>BB46s', 0, 40, b'frobnication')))


@case('feature table of garbage (length not a multiple of 48)')
def feature_table_garbage(img):
    img.ext.append((0x6803f857, bytes(range(256))[:100]))
    img.h['incompatible_features'] = 1 << 33


@case('feature table entry with a name that is not terminated')
def feature_table_noterm(img):
    img.ext.append((0x6803f857, struct.pack('>BB', 0, 9) + b'A' * 46))
    img.h['incompatible_features'] = 1 << 9


@case('extension length 0xffffffff')
def ext_len_huge(img):
    img.ext.append((0x12345678, b''))
    img.raw_header = None
    data = bytearray(img.render()[:CS])
    # patch the length of the first extension (right after the 112-byte header)
    struct.pack_into('>I', data, 112 + 4, 0xffffffff)
    return data + img.render()[CS:]


@case('extensions without an end marker filling the header cluster')
def ext_unterminated(img):
    img.end_marker = False
    for i in range(60):
        img.ext.append((0x1000 + i, b'x' * 56))


@case('unknown autoclear bits and a bitmaps extension of garbage')
def bitmaps_garbage(img):
    img.h['autoclear_features'] = 1 | (1 << 20)
    img.ext.append((0x23852875, struct.pack('>IIQQ', 0xffffffff, 0, 1 << 62, 3)))


def with_bitmap(img, entry=8 * CS, flags=2, gbits=16, table_size=1, name=b'b0',
                table_offset=7 * CS, nb=1):
    """A bitmap directory at cluster 6, its table at 7, its data at 8 (64 KiB
    granularity over the 1 MiB disk: one table entry), all refcount 1."""
    img.buf += bytearray(3 * CS)
    for c in (6, 7, 8):
        struct.pack_into('>H', img.buf, 2 * CS + 2 * c, 1)
    struct.pack_into('>QIIBBHI', img.buf, 6 * CS, table_offset, table_size, flags, 1,
                     gbits, len(name), 0)
    img.buf[6 * CS + 24:6 * CS + 24 + len(name)] = name
    img.put64(7 * CS, entry)
    img.buf[8 * CS] = 0x81
    img.h['autoclear_features'] = 1
    size = (24 + len(name) + 7) // 8 * 8
    img.ext.append((0x23852875, struct.pack('>IIQQ', nb, 0, size, 6 * CS)))


@case('an enabled bitmap, valid (control)')
def bitmap_valid(img):
    with_bitmap(img)


@case('bitmap data cluster on the L1 table')
def bitmap_data_on_l1(img):
    with_bitmap(img, entry=3 * CS)


@case('bitmap data cluster on the L2 table')
def bitmap_data_on_l2(img):
    with_bitmap(img, entry=4 * CS)


@case('bitmap data cluster on its own table')
def bitmap_data_on_table(img):
    with_bitmap(img, entry=7 * CS)


@case('bitmap table on the refcount block')
def bitmap_table_on_refblock(img):
    with_bitmap(img, table_offset=2 * CS)


@case('bitmap data cluster past the end of the file')
def bitmap_data_past_eof(img):
    with_bitmap(img, entry=1 << 40)


@case('bitmap table entry with reserved bits')
def bitmap_entry_reserved(img):
    with_bitmap(img, entry=8 * CS | 0x1fe)


@case('bitmap table size not matching the disk')
def bitmap_table_size(img):
    with_bitmap(img, table_size=1000)


@case('bitmap granularity 2^63')
def bitmap_granularity_huge(img):
    with_bitmap(img, gbits=63)


@case('two bitmap entries, one directory entry')
def bitmap_count_wrong(img):
    with_bitmap(img, nb=2)


@case('compression type extension bit with an unknown type')
def compression_type(img):
    img.h['incompatible_features'] = 1 << 3
    img.h['header_length'] = 112
    data = bytearray(img.render())
    data[104] = 7
    return data


# ---- sizes ----

@case('virtual size 2^63 - 1')
def size_huge(img):
    img.h['size'] = 2**63 - 1


@case('virtual size 2^64 - 512')
def size_wrap(img):
    img.h['size'] = 2**64 - 512


@case('virtual size 0 with an L1 table')
def size_zero(img):
    img.h['size'] = 0


@case('l1_size 0x7fffffff')
def l1_size_huge(img):
    img.h['l1_size'] = 0x7fffffff


@case('l1_size 4M entries (32 MiB table) past the end of the file')
def l1_size_max(img):
    img.h['l1_size'] = 4 << 20
    img.h['size'] = 1 << 40


@case('l1_size too small for the virtual size')
def l1_size_small(img):
    img.h['size'] = 1 << 30


@case('huge refcount_table_clusters')
def reftable_clusters_huge(img):
    img.h['refcount_table_clusters'] = 0xffffffff


@case('refcount_table_clusters 2048 (8 MiB) past the end of the file')
def reftable_clusters_past_eof(img):
    img.h['refcount_table_clusters'] = 2048


@case('no refcount table (0 clusters)')
def reftable_none(img):
    img.h['refcount_table_clusters'] = 0


@case('snapshot count huge, table past the end of the file')
def snapshots_huge(img):
    img.h['nb_snapshots'] = 0xffffffff
    img.h['snapshots_offset'] = 1 << 50


@case('one snapshot whose table is garbage')
def snapshot_garbage(img):
    img.h['nb_snapshots'] = 1
    img.h['snapshots_offset'] = 5 * CS      # the data cluster: 0x5a bytes


# ---- tables pointing where they must not ----

@case('L1 table offset past the end of the file')
def l1_past_eof(img):
    img.h['l1_table_offset'] = 1 << 40


@case('L1 table offset unaligned')
def l1_unaligned(img):
    img.h['l1_table_offset'] = 3 * CS + 8


@case('L1 table offset near 2^64 (overflows with its size)')
def l1_wrap(img):
    img.h['l1_table_offset'] = 2**64 - CS


@case('L1 entry pointing past the end of the file')
def l1e_past_eof(img):
    img.put64(3 * CS, (1 << 50) | COPIED)


@case('L1 entry pointing at the header')
def l1e_header(img):
    img.put64(3 * CS, 0 | COPIED | 0x200)


@case('L1 entry pointing at the L1 table itself')
def l1e_self(img):
    img.put64(3 * CS, (3 * CS) | COPIED)


@case('L1 entry with reserved bits')
def l1e_reserved(img):
    img.put64(3 * CS, (4 * CS) | COPIED | (1 << 60) | 1)


@case('L2 entry pointing into the header')
def l2e_header(img):
    img.put64(4 * CS, 0 | COPIED)
    img.put64(4 * CS + 8, 512 | COPIED)


@case('L2 entries pointing at the refcount table, block and L1 table')
def l2e_metadata(img):
    img.put64(4 * CS + 8, (1 * CS) | COPIED)
    img.put64(4 * CS + 16, (2 * CS) | COPIED)
    img.put64(4 * CS + 24, (3 * CS) | COPIED)


@case('L2 entry pointing past the end of the file')
def l2e_past_eof(img):
    img.put64(4 * CS, (1 << 48) | COPIED)


@case('L2 entry with reserved bits')
def l2e_reserved(img):
    img.put64(4 * CS, (5 * CS) | COPIED | (1 << 57) | 2)


@case('compressed L2 entry with the largest sector count, past the end of the file')
def l2e_compressed_huge(img):
    x = 62 - (12 - 8)
    img.put64(4 * CS, COMPRESSED | ((1 << x) - 1) | (((1 << (12 - 8)) - 1) << x))


@case('compressed L2 entry of garbage data')
def l2e_compressed_garbage(img):
    x = 62 - (12 - 8)
    img.put64(4 * CS, COMPRESSED | (5 * CS) | (3 << x))


@case('compressed L2 entry with the COPIED flag and zero flag')
def l2e_compressed_copied(img):
    x = 62 - (12 - 8)
    img.put64(4 * CS, COMPRESSED | COPIED | (5 * CS) | (1 << x))


@case('every L2 entry pointing at the same data cluster, refcount 1')
def l2e_shared(img):
    for i in range(512):
        img.put64(4 * CS + 8 * i, (5 * CS) | COPIED)


@case('data cluster refcount 0 (writes must not reuse it blindly)')
def refcount_zero(img):
    struct.pack_into('>H', img.buf, 2 * CS + 2 * 5, 0)
    struct.pack_into('>H', img.buf, 2 * CS + 2 * 4, 0)


@case('header cluster refcount 0 (the allocator must not hand out cluster 0)')
def refcount_header_zero(img):
    struct.pack_into('>H', img.buf, 2 * CS, 0)
    img.put64(3 * CS, 0)                    # no L2 table: the first write allocates


@case('refcount table overlapping the L1 table')
def reftable_on_l1(img):
    img.h['refcount_table_offset'] = 3 * CS


@case('refcount table at offset 0: the header read as the table (QEMU 060)')
def reftable_on_header(img):
    img.h['refcount_table_offset'] = 0
    img.put64(3 * CS, 0)                    # no L2 table: the first write allocates


@case('refcount table entry pointing at the header')
def reftable_e_header(img):
    img.put64(1 * CS, 0x200)


@case('refcount table entry pointing at the refcount table')
def reftable_e_self(img):
    img.put64(1 * CS, 1 * CS)


@case('refcount table entry past the end of the file')
def reftable_e_past_eof(img):
    img.put64(1 * CS, 1 << 52)


@case('refcount table entry unaligned')
def reftable_e_unaligned(img):
    img.put64(1 * CS, 2 * CS + 24)


@case('refcount table full of entries past the end of the file')
def reftable_e_all_past_eof(img):
    for i in range(512):
        img.put64(1 * CS + 8 * i, (1 << 40) + i * CS)


# ---- references to other files ----

@case('backing file is the image itself')
def backing_self(img):
    img.backing = 'NAME.qcow2'


@case('backing chain of two images that loop (A -> B -> A)')
def backing_loop_a(img):
    img.backing = 'backing_loop_b.qcow2'


@case('the other half of the loop (B -> A)')
def backing_loop_b(img):
    img.backing = 'backing_loop_a.qcow2'


@case('backing file name json:{...} naming /etc/passwd')
def backing_json(img):
    img.backing = 'json:{"driver":"file","filename":"/etc/passwd"}'


@case('backing file name nbd://localhost:1/x')
def backing_nbd(img):
    img.backing = 'nbd://localhost:1/x'


@case('backing file name of 1023 bytes')
def backing_long(img):
    img.backing = 'b' * 1023


@case('backing file name offset past the header cluster')
def backing_offset_bad(img):
    img.h['backing_file_offset'] = CS - 4
    img.h['backing_file_size'] = 100


@case('backing file offset past the header cluster, empty name (QEMU 080)')
def backing_offset_huge(img):
    img.h['backing_file_offset'] = 0xffffffffffffffff
    img.h['backing_file_size'] = 0


@case('backing file name starts inside an extension header (QEMU 080)')
def backing_offset_in_ext(img):
    img.ext.append((0x12345678, b''))
    img.h['backing_file_offset'] = 112 + 4
    img.h['backing_file_size'] = 0


@case('backing file offset set, name size 0: no backing file')
def backing_name_empty(img):
    img.h['backing_file_offset'] = CS - 8
    img.h['backing_file_size'] = 0


@case('backing file name size 0xffffffff')
def backing_size_huge(img):
    img.h['backing_file_offset'] = 512
    img.h['backing_file_size'] = 0xffffffff


@case('backing file /dev/zero (raw, endless zeros)')
def backing_devzero(img):
    img.backing = '/dev/zero'


def data_file_case(name):
    def fn(img):
        img.h['incompatible_features'] = 1 << 2
        img.ext.append((0x44415441, name.encode()))
    return fn


for _n, _w, _d in [
        ('datafile_json', 'data file name json:{...} naming /etc/passwd',
         'json:{"driver":"file","filename":"/etc/passwd"}'),
        ('datafile_nbd', 'data file name nbd://localhost:1/x', 'nbd://localhost:1/x'),
        ('datafile_blkdebug', 'data file name blkdebug::NAME', 'blkdebug::x.qcow2'),
        ('datafile_missing', 'data file that does not exist', 'nosuch.data'),
        ('datafile_dir', 'data file name naming a folder', '.'),
        ('datafile_empty', 'data file name empty', '')]:
    CASES.append((_n, _w, data_file_case(_d)))


@case('data file name with a NUL byte')
def datafile_nul(img):
    img.h['incompatible_features'] = 1 << 2
    img.ext.append((0x44415441, b'a\0b'))


@case('data file feature bit without a name; data_file_raw without a data file')
def datafile_noname(img):
    img.h['incompatible_features'] = 1 << 2
    img.h['autoclear_features'] = 2


@case('dirty bit with refcounts that are all wrong (repair on open)')
def dirty_bad_refcounts(img):
    img.h['incompatible_features'] = 1
    for c in range(6):
        struct.pack_into('>H', img.buf, 2 * CS + 2 * c, 7)


@case('corrupt bit set')
def corrupt_bit(img):
    img.h['incompatible_features'] = 2


def generate(outdir, only):
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, 'MANIFEST'), 'w') as man:
        for name, what, fn in CASES:
            if only and name not in only:
                continue
            img = Image()
            res = fn(img)
            data = res if isinstance(res, (bytes, bytearray)) else img.render()
            if img.backing == 'NAME.qcow2':
                img.backing = name + '.qcow2'
                data = img.render()
            with open(os.path.join(outdir, name + '.qcow2'), 'wb') as f:
                f.write(data)
            man.write('%s\t%s\n' % (name, what))


def main():
    if len(sys.argv) == 2 and sys.argv[1] == '--list':
        for name, what, _ in CASES:
            print('%-28s %s' % (name, what))
        return 0
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    generate(sys.argv[1], sys.argv[2:])
    return 0


if __name__ == '__main__':
    sys.exit(main())
