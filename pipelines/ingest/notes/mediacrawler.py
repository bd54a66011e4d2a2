"""MediaCrawler (NanmiCoder/MediaCrawler) note exports: xhs, douyin, bili, kuaishou, weibo.

JSON / JSONL / CSV (UTF-8 with a BOM) and the database store (tables ``xhs_note``, ``douyin_aweme``,
``bilibili_video``, ``kuaishou_video``, ``weibo_note``), in the older schema (raw ``user_id``) and the
2026-07 schema (``creator_hash``). Counts the exporter does not write for a platform are 0.
"""

from __future__ import annotations

from .base import NoteFormat

_AUTHOR = dict(author_raw="user_id", author_hash="creator_hash")

XHS = NoteFormat(
    name="mediacrawler_xhs",
    platform="xiaohongshu",
    note_id="note_id",
    url="note_url",
    published="time",  # epoch ms
    signature=frozenset({"note_id", "type", "time", "liked_count", "collected_count"}),
    title="title",
    text="desc",
    tags="tag_list",
    counts={
        "likes": "liked_count",
        "collects": "collected_count",
        "comments": "comment_count",
        "shares": "share_count",
    },
    note_type="type",  # normal (image) / video
    sqlite_tables=("xhs_note",),
    **_AUTHOR,
)

DOUYIN = NoteFormat(
    name="mediacrawler_douyin",
    platform="douyin",
    note_id="aweme_id",
    url="aweme_url",
    published="create_time",  # epoch s
    signature=frozenset({"aweme_id", "create_time", "liked_count"}),
    title="title",
    text="desc",
    counts={
        "likes": "liked_count",
        "collects": "collected_count",
        "comments": "comment_count",
        "shares": "share_count",
    },
    note_type="aweme_type",
    # Douyin's aweme_type codes: 2 (image), 68 (图文 note) and 150 (image slideshow) are images;
    # 0 and the other listed codes are video formats; a code not listed is stored as unknown.
    type_map={
        "2": "image",
        "68": "image",
        "150": "image",
        **{c: "video" for c in ("0", "4", "51", "55", "61", "66", "101", "109")},
    },
    sqlite_tables=("douyin_aweme",),
    **_AUTHOR,
)

BILIBILI = NoteFormat(
    name="mediacrawler_bili",
    platform="bilibili",
    note_id="video_id",
    url="video_url", url_id_prefix="av",
    published="create_time",  # epoch s
    signature=frozenset({"video_id", "create_time", "video_play_count"}),
    title="title",
    text="desc",
    counts={
        "likes": "liked_count",
        "collects": "video_favorite_count",
        "comments": "video_comment",
        "shares": "video_share_count",
    },
    note_type="video_type",
    # Every Bilibili record MediaCrawler writes is a video; its video_type is a free label.
    type_default="video",
    type_map={"1": "video", "2": "video"},
    sqlite_tables=("bilibili_video",),
    **_AUTHOR,
)

KUAISHOU = NoteFormat(
    name="mediacrawler_kuaishou",
    platform="kuaishou",
    note_id="video_id",
    url="video_url",
    published="create_time",  # epoch ms
    signature=frozenset({"video_id", "create_time", "viewd_count"}),
    title="title",
    text="desc",
    counts={"likes": "liked_count"},
    note_type="video_type",
    # Kuaishou photo types: VIDEO, and the image albums HORIZONTAL_ATLAS / VERTICAL_ATLAS; older
    # exports write the API's numeric type, and every numeric type MediaCrawler crawls is a video.
    type_default="video",
    type_map={
        "horizontal_atlas": "image",
        "vertical_atlas": "image",
        "atlas": "image",
        **{str(c): "video" for c in range(0, 10)},
    },
    sqlite_tables=("kuaishou_video",),
    **_AUTHOR,
)

WEIBO = NoteFormat(
    name="mediacrawler_weibo",
    platform="weibo",
    note_id="note_id",
    url="note_url",
    # create_time is 8 h off in the exporter; create_date_time carries its offset.
    published="create_date_time",
    signature=frozenset({"note_id", "content", "create_date_time"}),
    text="content",
    counts={"likes": "liked_count", "comments": "comments_count", "shares": "shared_count"},
    # A Weibo post carries no type field: it is a text/image post.
    type_default="image",
    sqlite_tables=("weibo_note",),
    **_AUTHOR,
)

FORMATS = (XHS, DOUYIN, BILIBILI, KUAISHOU, WEIBO)
