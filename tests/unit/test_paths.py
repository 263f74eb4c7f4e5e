"""Path rules: every caller-supplied sandbox path is canonicalised or rejected with a 400."""

from __future__ import annotations

import pytest
from sandbox_gateway.models.errors import InvalidFilePath, InvalidRequest
from sandbox_gateway.paths import MAX_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, resolve_sandbox_path

ROOTS = ("/workspace", "/home/user", "/tmp")


def resolve(raw: str, *, allow_root: bool = False) -> str:
    return resolve_sandbox_path(raw, allowed_roots=ROOTS, workspace_root="/workspace", allow_root=allow_root)


def reject(raw: str, *, allow_root: bool = False) -> InvalidFilePath:
    with pytest.raises(InvalidFilePath) as caught:
        resolve(raw, allow_root=allow_root)
    error = caught.value
    assert isinstance(error, InvalidRequest)
    # A user-readable sentence, not a repr or an empty string.
    assert error.message == str(error)
    assert len(error.message) > 10
    assert error.code == "invalid_file_path"
    return error


# --- accepted paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("output.txt", "/workspace/output.txt"),
        ("a/b/c.py", "/workspace/a/b/c.py"),
        ("./data.csv", "/workspace/data.csv"),
        ("dir/", "/workspace/dir"),
        ("~/x", "/workspace/~/x"),
        ("a..b", "/workspace/a..b"),
        ("...", "/workspace/..."),
        (".hidden", "/workspace/.hidden"),
        ("café.txt", "/workspace/café.txt"),
        ("数据/表.csv", "/workspace/数据/表.csv"),
    ],
)
def test_resolve_sandbox_path_puts_relative_paths_under_workspace(raw: str, expected: str) -> None:
    assert resolve(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["/workspace/a.txt", "/home/user/notes.md", "/tmp/scratch/x.bin", "/workspace/deep/er/file"],
)
def test_resolve_sandbox_path_accepts_absolute_paths_inside_each_root(raw: str) -> None:
    assert resolve(raw) == raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("//workspace//a/./b", "/workspace/a/b"),
        ("/workspace/a/", "/workspace/a"),
        ("/workspace/./././a", "/workspace/a"),
        ("a//b///c", "/workspace/a/b/c"),
        ("/home/user/./x/", "/home/user/x"),
    ],
)
def test_resolve_sandbox_path_canonicalises_duplicate_slashes_and_dot_segments(
    raw: str, expected: str
) -> None:
    assert resolve(raw) == expected


def test_resolve_sandbox_path_result_is_idempotent() -> None:
    once = resolve("//workspace//a/./b/")
    assert resolve(once) == once


# --- traversal --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "..",
        "../etc/passwd",
        "../../../../etc/passwd",
        "a/../b",
        "a/b/..",
        "/workspace/../etc/passwd",
        "/workspace/a/../../etc",
        "/workspace/..",
        "/tmp/../workspace/x",  # would even land inside a root: still rejected, never repaired
        "./../x",
        "a/./../b",
        "/workspace/a/..//b",
    ],
)
def test_resolve_sandbox_path_rejects_dotdot_anywhere(raw: str) -> None:
    error = reject(raw)
    assert "'..'" in error.message


# --- characters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "a\x00b",
        "\x00",
        "/workspace/file.txt\x00.png",
        "a\nb",
        "a\rb",
        "a\tb",
        "a\x1b[31mred",
        "a\x7fb",
        "a\x85b",  # NEL, a C1 control
        "a\x9bb",  # CSI, a C1 control
        "evil\u202etxt.exe",  # RIGHT-TO-LEFT OVERRIDE
        "a\u202db",  # LEFT-TO-RIGHT OVERRIDE
        "a\u2066b",  # LEFT-TO-RIGHT ISOLATE
        "a\u200bb",  # ZERO WIDTH SPACE
        "a\u200db",  # ZERO WIDTH JOINER
        "\ufeffa.txt",  # BOM
        "a\u00adb",  # SOFT HYPHEN
        "a\ud800b",  # lone surrogate
    ],
)
def test_resolve_sandbox_path_rejects_control_and_format_characters(raw: str) -> None:
    error = reject(raw)
    assert "control or format character" in error.message
    assert "U+" in error.message


def test_resolve_sandbox_path_names_the_offending_code_point() -> None:
    assert "U+202E" in reject("x\u202ey").message
    assert "U+0000" in reject("x\x00y").message


@pytest.mark.parametrize(
    "raw",
    [
        "\uff0e\uff0e\uff0fetc/passwd",  # fullwidth ../ → ../etc/passwd
        "\uff0e\uff0e/etc/passwd",
        "a/\uff0e\uff0e/b",  # fullwidth .. as a segment
        "/workspace/\uff0e\uff0e/\uff0e\uff0e/etc/passwd",
        "\u2025/etc",  # TWO DOT LEADER → ..
        "\ufe52\ufe52/x",  # two SMALL FULL STOPs → ..
        "/\uff57\uff4f\uff52\uff4b\uff53\uff50\uff41\uff43\uff45/x",  # fullwidth "workspace"
        "/etc\uff0fpasswd",  # fullwidth solidus
        "\ufb01le.txt",  # ﬁ ligature
    ],
)
def test_resolve_sandbox_path_rejects_nfkc_compatibility_tricks(raw: str) -> None:
    reject(raw)


def test_resolve_sandbox_path_rejects_fullwidth_dotdot_even_when_it_would_stay_inside() -> None:
    # Fullwidth dots fold to .. under NFKC: the check runs on the final (folded) string too.
    reject("a/b/\uff0e\uff0e/c")


@pytest.mark.parametrize(
    "raw",
    ["a\\b", "..\\..\\etc\\passwd", "\\workspace\\x", "/workspace/a\\..\\..\\etc"],
)
def test_resolve_sandbox_path_rejects_backslashes(raw: str) -> None:
    assert "\\" in reject(raw).message


# --- lengths and depth -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("segment", "ok"),
    [
        ("a" * MAX_NAME_BYTES, True),
        ("a" * (MAX_NAME_BYTES + 1), False),
        ("é" * 100, True),  # 200 bytes in UTF-8
        ("é" * 127, True),  # 254 bytes
        ("é" * 128, False),  # 256 bytes
        ("é" * 130, False),  # 260 bytes, though only 130 characters
        ("数" * 85, True),  # 255 bytes
        ("数" * 86, False),  # 258 bytes
        ("😀" * 64, False),  # 256 bytes
    ],
)
def test_resolve_sandbox_path_caps_segment_length_in_utf8_bytes(segment: str, ok: bool) -> None:
    if ok:
        assert resolve(f"dir/{segment}") == f"/workspace/dir/{segment}"
    else:
        assert str(MAX_NAME_BYTES) in reject(f"dir/{segment}").message


def test_resolve_sandbox_path_rejects_over_long_path() -> None:
    raw = "/workspace/" + "/".join(["a" * 200] * 6)  # 11 + 6 * 201 - 1 = 1216 bytes
    assert len(raw.encode()) > MAX_PATH_BYTES
    assert str(MAX_PATH_BYTES) in reject(raw).message


def test_resolve_sandbox_path_accepts_path_of_exactly_max_bytes() -> None:
    prefix = "/workspace/"
    raw = prefix + "/".join(["b" * 200] * 4)
    raw += "/" + "c" * (MAX_PATH_BYTES - len(raw) - 1)
    assert len(raw.encode()) == MAX_PATH_BYTES
    assert resolve(raw) == raw


def test_resolve_sandbox_path_counts_path_length_in_utf8_bytes() -> None:
    raw = "/".join(["é" * 100] * 6)  # 600 characters but 1205 bytes
    assert len(raw) < MAX_PATH_BYTES < len(raw.encode())
    reject(raw)


def test_resolve_sandbox_path_caps_the_final_path_length() -> None:
    raw = "/".join(["d" * 200] * 5) + "/" + "e" * 18  # 1023 bytes, relative
    assert len(raw.encode()) <= MAX_PATH_BYTES
    try:
        resolved = resolve(raw)
    except InvalidFilePath:
        return
    assert len(resolved.encode()) <= MAX_PATH_BYTES


def test_resolve_sandbox_path_caps_depth() -> None:
    # Depth counts the canonical path's segments, the workspace root included.
    ok = "/workspace/" + "/".join(["d"] * (MAX_DEPTH - 1))
    assert resolve(ok) == ok
    too_deep = ok + "/d"
    assert str(MAX_DEPTH) in reject(too_deep).message
    assert str(MAX_DEPTH) in reject("/".join(["d"] * MAX_DEPTH)).message  # relative: 1 + 32 levels


def test_resolve_sandbox_path_depth_ignores_dot_and_empty_segments() -> None:
    raw = "/workspace/" + "/".join(["d", ".", ""] * (MAX_DEPTH - 1))
    assert resolve(raw) == "/workspace/" + "/".join(["d"] * (MAX_DEPTH - 1))


# --- roots -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "/etc/passwd",
        "/",
        "//",
        "/root/x",
        "/proc/self/environ",
        "/var/run/docker.sock",
        "/home/other/x",
        "/home",
        "/usr/bin/python3",
    ],
)
def test_resolve_sandbox_path_rejects_paths_outside_roots(raw: str) -> None:
    error = reject(raw)
    assert "outside the allowed directories" in error.message
    for root in ROOTS:
        assert root in error.message


@pytest.mark.parametrize(
    "raw",
    [
        "/workspace2/x",
        "/workspace2",
        "/home/userx/y",
        "/home/user2",
        "/tmpfoo",
        "/tmp-x/y",
        "/workspace.bak/a",
    ],
)
def test_resolve_sandbox_path_rejects_string_prefix_tricks(raw: str) -> None:
    assert "outside the allowed directories" in reject(raw).message


@pytest.mark.parametrize(
    "raw", ["/workspace", "/home/user", "/tmp", "/workspace/", "//tmp//", ".", "./", "/workspace/."]
)
def test_resolve_sandbox_path_rejects_a_root_as_a_file(raw: str) -> None:
    assert "root directory" in reject(raw).message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("/workspace", "/workspace"), ("/home/user/", "/home/user"), ("//tmp", "/tmp"), (".", "/workspace")],
)
def test_resolve_sandbox_path_allows_a_root_with_allow_root(raw: str, expected: str) -> None:
    assert resolve(raw, allow_root=True) == expected


@pytest.mark.parametrize("raw", ["/", "/home", "/workspace/..", "/etc"])
def test_resolve_sandbox_path_allow_root_never_admits_anything_above_a_root(raw: str) -> None:
    reject(raw, allow_root=True)


def test_resolve_sandbox_path_rejects_empty_string() -> None:
    assert "empty" in reject("").message


def test_resolve_sandbox_path_honours_custom_roots() -> None:
    assert resolve_sandbox_path("x", allowed_roots=("/data", "/out"), workspace_root="/data") == "/data/x"
    with pytest.raises(InvalidFilePath):
        resolve_sandbox_path("/workspace/x", allowed_roots=("/data",), workspace_root="/data")
