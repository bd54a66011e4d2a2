"""Spider_XHS (cv-cat/Spider_XHS): one ``info.json`` per Xiaohongshu note (or an array of them)."""

from __future__ import annotations

from .base import NoteFormat

SPIDER_XHS = NoteFormat(
    name="spider_xhs",
    platform="xiaohongshu",
    note_id="note_id",
    published="upload_time",  # "YYYY-MM-DD HH:MM:SS", Asia/Shanghai
    signature=frozenset({"note_id", "note_type", "upload_time"}),
    author_raw="user_id",
    title="title",
    untitled=("无标题",),  # what the tool writes when a note has no title
    text="desc",
    tags="tags",
    tag_style="list",
    counts={
        "likes": "liked_count",
        "collects": "collected_count",
        "comments": "comment_count",
        "shares": "share_count",
    },
    note_type="note_type",  # 图集 / 视频
)

FORMATS = (SPIDER_XHS,)
