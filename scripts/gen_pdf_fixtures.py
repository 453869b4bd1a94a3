#!/usr/bin/env python3
"""gen_pdf_fixtures.py -- writes the PDFs of tests/fixtures/pdf/ (standard library only).

  example.pdf     1 page: the demo model's example image (its answer: 4 shapes)
  pages.pdf       3 pages: the demo model's example (4 shapes), a held-out digits image (267),
                  and a line of text; images embedded as their PNG data (FlateDecode with the
                  PNG predictor), each page the image's size in points
  many_pages.pdf  2,000 pages sharing one content stream (a page range is needed)
  huge_page.pdf   a 200 x 200 inch page (the largest PDF allows) and a 200 x 0.28 inch strip
  encrypted.pdf   a page behind the Standard security handler with a user password
  broken.pdf      a header, then a truncated object and no cross-reference table

Run from the repository root: python3 scripts/gen_pdf_fixtures.py
"""
import os
import struct
import zlib

OUT = "tests/fixtures/pdf"


def png_rgb(path):
    """(width, height, concatenated IDAT data) of an 8-bit RGB, non-interlaced PNG."""
    d = open(path, "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    w = h = None
    while pos < len(d):
        n, = struct.unpack(">I", d[pos:pos + 4])
        kind, body = d[pos + 4:pos + 8], d[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color == 2 and interlace == 0, path
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    return w, h, idat


def write_pdf(path, objects, root=1, trailer_extra=b""):
    """objects: list of bytes, object i+1 each; writes header, objects, xref and trailer."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offs = []
    for i, body in enumerate(objects):
        offs.append(len(out))
        out += b"%d 0 obj\n" % (i + 1) + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for o in offs:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, root, trailer_extra, xref)
    open(path, "wb").write(out)


def stream(data, extra=b""):
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def image_obj(png):
    w, h, idat = png_rgb(png)
    return w, h, stream(idat, b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                        b"/BitsPerComponent 8 /Filter /FlateDecode /DecodeParms << /Predictor 15 "
                        b"/Colors 3 /BitsPerComponent 8 /Columns %d >> " % (w, h, w))


def pages_pdf():
    # 1 catalog, 2 pages, 3-5 page objects, 6-8 contents, 9-10 images, 11 font
    w1, h1, im1 = image_obj("models/demo/example.png")
    w2, h2, im2 = image_obj("tests/fixtures/demo_eval/009.png")
    text = b"BT /F1 24 Tf 20 40 Td (glmv reads PDF pages) Tj ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 6 0 R "
        b"/Resources << /XObject << /Im1 9 0 R >> >> >>" % (w1, h1),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 7 0 R "
        b"/Resources << /XObject << /Im2 10 0 R >> >> >>" % (w2, h2),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 320 100] /Contents 8 0 R "
        b"/Resources << /Font << /F1 11 0 R >> >> >>",
        stream(b"q %d 0 0 %d 0 0 cm /Im1 Do Q" % (w1, h1)),
        stream(b"q %d 0 0 %d 0 0 cm /Im2 Do Q" % (w2, h2)),
        stream(text),
        im1,
        im2,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    write_pdf(OUT + "/pages.pdf", objs)


def example_pdf():
    w, h, im = image_obj("models/demo/example.png")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R "
        b"/Resources << /XObject << /Im1 5 0 R >> >> >>" % (w, h),
        stream(b"q %d 0 0 %d 0 0 cm /Im1 Do Q" % (w, h)),
        im,
    ]
    write_pdf(OUT + "/example.pdf", objs)


def many_pages_pdf(n=2000):
    first = 4
    kids = b" ".join(b"%d 0 R" % (first + i) for i in range(n))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 200 100] >>" % (kids, n),
        stream(b"0 0.5 0 rg 50 25 100 50 re f"),
    ] + [b"<< /Type /Page /Parent 2 0 R /Contents 3 0 R >>"] * n
    write_pdf(OUT + "/many_pages.pdf", objs)


def huge_page_pdf():
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14400 14400] /Contents 5 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14400 20] /Contents 5 0 R >>",
        stream(b"1 0 0 rg 1000 1000 12400 12400 re f"),
    ]
    write_pdf(OUT + "/huge_page.pdf", objs)


def encrypted_pdf():
    # RC4 40-bit, revision 2; /U does not match the empty password, so a reader needs one
    o = bytes(range(32))
    u = bytes(range(32, 64))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R >>",
        stream(zlib.compress(b"0 0 1 rg 10 10 50 50 re f")[:16]),
        b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -4 >>" % (o.hex().encode(), u.hex().encode()),
    ]
    write_pdf(OUT + "/encrypted.pdf", objs,
              trailer_extra=b"/Encrypt 5 0 R /ID [<%s> <%s>] " % (b"00" * 16, b"00" * 16))


def broken_pdf():
    data = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pag"
    open(OUT + "/broken.pdf", "wb").write(data)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    example_pdf()
    pages_pdf()
    many_pages_pdf()
    huge_page_pdf()
    encrypted_pdf()
    broken_pdf()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))
