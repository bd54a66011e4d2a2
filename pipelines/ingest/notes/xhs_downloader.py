"""XHS-Downloader (JoeanAmier/XHS-Downloader): SQLite table ``explore_data`` and its CSV export."""

from __future__ import annotations

from .base import NoteFormat

XHS_DOWNLOADER = NoteFormat(
    name="xhs_downloader",
    platform="xiaohongshu",
    note_id="作品ID",
    published="发布时间",  # "%Y-%m-%d_%H:%M:%S", Asia/Shanghai
    signature=frozenset({"作品ID", "作品类型", "发布时间"}),
    author_raw="作者ID",
    title="作品标题",
    text="作品描述",
    tags="作品标签",
    tag_style="space",
    counts={
        "likes": "点赞数量",
        "collects": "收藏数量",
        "comments": "评论数量",
        "shares": "分享数量",
    },
    note_type="作品类型",  # 图文 / 视频 / 图集 / 未知 (stored as unknown)
    sqlite_tables=("explore_data",),
)

FORMATS = (XHS_DOWNLOADER,)
