"""Media references: each form Label Studio writes, parsed into its kind, path and file name."""

import pytest

from lsflow.core.model.media_ref import MediaKind, MediaReference, media_file_name

UPLOAD, LOCAL, HTTP, CLOUD = MediaKind.UPLOAD, MediaKind.LOCAL_FILES, MediaKind.HTTP, MediaKind.CLOUD
DATA, PATH, OTHER, MALFORMED = MediaKind.DATA, MediaKind.PATH, MediaKind.OTHER_URL, MediaKind.MALFORMED


@pytest.mark.parametrize(("text", "kind", "file_name", "path", "details"), [
    # Uploads: the path under upload/, decoded; query and fragment are not part of it.
    ("/data/upload/12/abc-photo.jpg", UPLOAD, "abc-photo.jpg", "12/abc-photo.jpg", {"route": UPLOAD}),
    ("/data/upload/1/a%20b%23c.jpg", UPLOAD, "a b#c.jpg", "1/a b#c.jpg", {}),
    ("/data/upload/1/x.jpg?v=2#top", UPLOAD, "x.jpg", "1/x.jpg", {}),
    ("/data/upload/1/", UPLOAD, "", "1/", {}),
    ("/data/upload/1/..", UPLOAD, "", "1/..", {}),
    ("/data/upload/1/%2E%2E", UPLOAD, "", "1/..", {}),
    # Local files: ?d= as Django reads request.GET["d"] (decoded once, '+' a space, the last value wins).
    ("/data/local-files/?d=dir/b.jpg", LOCAL, "b.jpg", "dir/b.jpg", {"route": LOCAL}),
    ("/data/local-files/?x=1&d=dir/b.jpg", LOCAL, "b.jpg", "dir/b.jpg", {}),
    ("/data/local-files/?d=dir/a.jpg&x=1", LOCAL, "a.jpg", "dir/a.jpg", {}),
    ("/data/local-files/?d=dir%2Fsub%2Fa%20b.jpg", LOCAL, "a b.jpg", "dir/sub/a b.jpg", {}),
    ("/data/local-files/?d=my+photos/a+b.jpg", LOCAL, "a b.jpg", "my photos/a b.jpg", {}),
    ("/data/local-files/?d=first.jpg&d=dir/second.jpg", LOCAL, "second.jpg", "dir/second.jpg", {}),
    ("/data/local-files?d=a.jpg", LOCAL, "a.jpg", "a.jpg", {}),
    ("/data/local-files/?d=dir%5Cwin%5Ca.jpg", LOCAL, "a.jpg", "dir\\win\\a.jpg", {}),
    ("/data/local-files/?d=", LOCAL, "", "", {}),
    ("/data/local-files/?x=1", LOCAL, "", "", {}),
    # http(s): the decoded URL path, the query (signatures) ignored; an instance's own routes recognised,
    # at the root or under the sub-path Label Studio is served at.
    ("https://cdn.example.com/img/street%201.jpg?X-Amz-Signature=ab%2Fc&X-Amz-Expires=60", HTTP, "street 1.jpg",
     "/img/street 1.jpg", {"scheme": "https", "route": None}),
    ("HTTP://Host/A.JPG", HTTP, "A.JPG", "/A.JPG", {"scheme": "http"}),
    ("https://host/dir/", HTTP, "", "/dir/", {}),
    ("http://ls:8080/data/upload/1/x.jpg", HTTP, "x.jpg", "1/x.jpg", {"route": UPLOAD, "mount": ""}),
    ("https://ls/data/local-files/?d=a/b.jpg", HTTP, "b.jpg", "a/b.jpg", {"route": LOCAL, "mount": ""}),
    ("https://host/ls/data/upload/3/c.png", HTTP, "c.png", "3/c.png", {"route": UPLOAD, "mount": "/ls"}),
    ("https://host/ls/data/local-files/?x=1&d=a/b.jpg", HTTP, "b.jpg", "a/b.jpg", {"route": LOCAL, "mount": "/ls"}),
    # Cloud storage: bucket and key as Label Studio reads its own URIs (not decoded, '#' part of the key).
    ("s3://bucket/dir/img.jpg", CLOUD, "img.jpg", "dir/img.jpg", {"scheme": "s3", "bucket": "bucket"}),
    ("gs://bucket/a%20b.jpg", CLOUD, "a%20b.jpg", "a%20b.jpg", {"scheme": "gs"}),
    ("azure-blob://container/dir/take#1.wav", CLOUD, "take#1.wav", "dir/take#1.wav",
     {"scheme": "azure-blob", "bucket": "container"}),
    ("s3://bucket", CLOUD, "", "", {"bucket": "bucket"}),
    # Inline data: no file name.
    ("data:image/png;base64,iVBORw0KGgo=", DATA, "", "", {"scheme": "data", "media_type": "image/png"}),
    (" DATA:Image/JPEG;base64,/9j/4AAQ", DATA, "", "", {"media_type": "image/jpeg"}),
    ("data:,hello", DATA, "", "", {"media_type": ""}),
    ("da\nta:image/png;base64,iVBORw0KGgo/AAA=", DATA, "", "", {"scheme": "data"}),
    # Plain paths: file names, so nothing in them is decoded.
    ("/mnt/x/img.jpg", PATH, "img.jpg", "/mnt/x/img.jpg", {"scheme": "", "route": None}),
    ("img.jpg", PATH, "img.jpg", "img.jpg", {}),
    ("/mnt/x/a%20b.jpg", PATH, "a%20b.jpg", "/mnt/x/a%20b.jpg", {}),
    ("", PATH, "", "", {}),
    # Other schemes (the resolver refuses them) still name their file; Label Studio writes azure-blob://, not azure://.
    ("azure://container/a.jpg", OTHER, "a.jpg", "/a.jpg", {"scheme": "azure"}),
    ("file:///srv/a%20b.jpg", OTHER, "a b.jpg", "/srv/a b.jpg", {"scheme": "file"}),
    ("C:\\data\\img.jpg", OTHER, "img.jpg", "\\data\\img.jpg", {"scheme": "c"}),
    ("http://[::1/x.jpg", MALFORMED, "", "", {}),
])
def test_each_form_parses_into_its_kind_path_and_file_name(text, kind, file_name, path, details):
    reference = MediaReference.parse(text)
    assert (reference.text, reference.kind, reference.file_name, reference.path) == (text, kind, file_name, path)
    assert {field: getattr(reference, field) for field in details} == details
    assert media_file_name(text) == file_name


@pytest.mark.parametrize(("text", "file_name"), [
    ("/data/upload/1/3f2a1b9c-street.jpg", "3f2a1b9c-street.jpg"),
    ("/data/upload/2/Zoë.wav", "Zoë.wav"),
    ("/data/upload/1/a;b.jpg", "a;b.jpg"),
    ("/data/upload/1/a%20b.jpg", "a b.jpg"),
    ("/data/upload/1/%E2%82%AC.jpg", "€.jpg"),
    ("/data/upload/1/dir%2Fc.jpg", "c.jpg"),
    ("/data/upload/1/a.jpg?v=2", "a.jpg"),
    ("/data/upload/1/a.jpg#frag", "a.jpg"),
    ("/data/upload/1/a\\b.jpg", "b.jpg"),
    ("/data/upload/1/a\tb.jpg", "ab.jpg"),  # urlsplit drops tabs and newlines, as the resolver reads it
    ("/data/upload/1/%00.jpg", ""),
    ("/data/upload/1/", ""),
    ("/data/upload/1/.", ""),
    ("/data/upload/1/..", ""),
])
def test_the_fast_path_for_uploads_agrees_with_the_full_parse(text, file_name):
    assert media_file_name(text) == MediaReference.parse(text).file_name == file_name


def test_no_reference_names_no_file():
    assert media_file_name(None) == media_file_name("") == ""


@pytest.mark.parametrize(("text", "suffix"), [
    ("/data/upload/1/photo.jpg", ".jpg"),
    ("/data/upload/1/archive.tar.gz", ".gz"),
    ("/data/local-files/?d=a/UPPER.PNG", ".PNG"),
    ("/data/upload/1/", ""),
    ("/data/upload/1/.hidden", ""),
    ("data:image/png;base64,iVBORw0KGgo=", ".png"),
    ("data:image/jpeg;base64,/9j/4AAQ", ".jpg"),
    ("data:audio/x-wav;base64,UklGRg==", ".wav"),
    ("data:image/svg+xml;utf8,<svg/>", ".svg"),
    ("data:application/octet-stream;base64,AA==", ""),
    ("data:,hello", ""),
])
def test_the_suffix_is_the_file_names_or_the_inline_media_types(text, suffix):
    assert MediaReference.parse(text).suffix == suffix
