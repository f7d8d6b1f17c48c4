"""`dockyard images` rows as docker's formatter.imageFormat makes them: one per repository and
tag, then one per repository known only by digest (tag <none>), digests only with --digests."""

from dockyard_cli.images import image_rows

IMAGE = {"Id": "sha256:" + "f3" * 32, "Created": 0, "Size": 1982000,
         "RepoTags": ["busybox:latest", "busybox:1"],
         "RepoDigests": ["busybox@sha256:aa", "127.0.0.1:5000/ctx/busybox@sha256:bb"]}


def rows(image, digests):
    return [(r.fields["Repository"], r.fields["Tag"], r.fields["Digest"]) for r in image_rows(image, digests)]


def test_digest_only_repositories_get_a_row_of_their_own():
    assert rows(IMAGE, digests=False) == [("busybox", "latest", "<none>"), ("busybox", "1", "<none>"),
                                          ("127.0.0.1:5000/ctx/busybox", "<none>", "")]


def test_digests_flag_shows_them_per_tag_and_per_digest_only_repository():
    assert rows(IMAGE, digests=True) == [("busybox", "latest", "sha256:aa"), ("busybox", "1", "sha256:aa"),
                                         ("127.0.0.1:5000/ctx/busybox", "<none>", "sha256:bb")]


def test_dangling_is_one_none_row():
    assert rows({**IMAGE, "RepoTags": [], "RepoDigests": []}, digests=True) == [("<none>", "<none>", "<none>")]
    assert rows({**IMAGE, "RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"]}, digests=False) == \
        [("<none>", "<none>", "<none>")]
