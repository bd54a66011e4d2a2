"""Notes written as the real exporters write them (shared/formats/EXPORTERS.md).

MediaCrawler (every platform; JSON, JSONL, CSV with BOM; the older schema with raw ``user_id`` and
the 2026-07 schema with ``creator_hash`` and masked nicknames), Spider_XHS per-note ``info.json``
and XHS-Downloader CSV with Chinese headers. Notes are dimension data (tens of thousands), so
records are built one dict per note.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

CST = timezone(timedelta(hours=8))  # Asia/Shanghai has kept +08:00 without DST since 1991

#: Exporter formats per platform: (exporter, file type, schema)
FORMATS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "xiaohongshu": (
        ("mediacrawler", "json", "old"),
        ("mediacrawler", "jsonl", "v2026"),
        ("mediacrawler", "csv", "old"),
        ("mediacrawler", "jsonl", "old"),
        ("mediacrawler", "csv", "v2026"),
        ("mediacrawler", "json", "v2026"),
        ("spider_xhs", "json", "info"),
        ("xhs_downloader", "csv", "explore_data"),
    ),
    **{
        p: (
            ("mediacrawler", "jsonl", "v2026"),
            ("mediacrawler", "json", "old"),
            ("mediacrawler", "csv", "v2026"),
            ("mediacrawler", "jsonl", "old"),
            ("mediacrawler", "csv", "old"),
            ("mediacrawler", "json", "v2026"),
        )
        for p in ("douyin", "bilibili", "kuaishou", "weibo")
    },
}
_MC_DIR = {"xiaohongshu": "xhs", "douyin": "douyin", "bilibili": "bili", "kuaishou": "kuaishou", "weibo": "weibo"}
_MC_PREFIX = {"old": "detail", "v2026": "search"}  # two schemas of one type must not share a name
_CSV_PREFIX = {"old": "creator", "v2026": "search"}


@dataclass
class NoteFile:
    """One notes file to write: its name, bytes and what it holds."""

    name: str
    content: bytes
    exporter: str
    file_type: str
    schema: str
    rows: int
    #: {row (1-based record), line (JSONL only; CSV records may span lines), reason, note_id}
    malformed: list[dict] = field(default_factory=list)


def count_strings(rng: np.random.Generator, values: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Counts as exporters print them: "809", "1.2万", "3千", "10+"; returns strings and style counts."""
    v = np.asarray(values, dtype=np.int64)
    r = rng.random(len(v))
    plain = v.astype(str).astype(object)
    wan = np.char.add(np.char.mod("%.1f", v / 10_000), "万").astype(object)
    qian = np.char.add(np.round(v / 1000).astype(np.int64).astype(str), "千").astype(object)
    plus = np.char.add((v // 10 * 10).astype(str), "+").astype(object)
    use_wan = v >= 10_000
    use_qian = (v >= 1000) & (v < 10_000) & (r < 0.3)
    use_plus = (v >= 10) & (v < 100) & (r < 0.1)
    out = np.where(use_wan, wan, np.where(use_qian, qian, np.where(use_plus, plus, plain)))
    return out, {"wan": int(use_wan.sum()), "qian": int(use_qian.sum()), "plus": int(use_plus.sum())}


def mask_nickname(name: str) -> str:
    """MediaCrawler 2026-07 masking: first char + *** + last char."""
    return name[:1] + "***" + name[-1:] if len(name) > 1 else name + "***"


def _local(ts: int, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(ts, CST).strftime(fmt)


def _body_with_tags(platform: str, body: str, tags: list[str]) -> str:
    """Inline topics as each platform shows them (Xiaohongshu's #topic[话题]# markup)."""
    if platform == "xiaohongshu":
        return body + "\n" + " ".join(f"#{t}[话题]#" for t in tags)
    if platform == "weibo":
        return body + " " + " ".join(f"#{t}#" for t in tags)
    return body + " " + " ".join(f"#{t}" for t in tags)


def mediacrawler_record(platform: str, schema: str, n: dict, counts: dict, fetched_ms: int) -> dict:
    """One MediaCrawler record of a note (``n``: note fields; ``counts``: count strings)."""
    tags = n["tags"]
    desc = _body_with_tags(platform, n["body"], tags)
    uid, nick = n["raw_id"], n["nickname"]
    if platform == "xiaohongshu":
        rec = {
            "note_id": n["note_id"], "type": "video" if n["note_type"] == "video" else "normal",
            "title": n["title"], "desc": desc,
            "video_url": f"https://sns-video.xhscdn.com/{n['note_id']}" if n["note_type"] == "video" else "",
            "time": n["published"] * 1000, "last_update_time": n["published"] * 1000 + 60_000,
            "user_id": uid, "nickname": nick, "avatar": "", "liked_count": counts["likes"],
            "collected_count": counts["collects"], "comment_count": counts["comments"],
            "share_count": counts["shares"], "ip_location": "上海", "image_list": "",
            "tag_list": ",".join(tags), "last_modify_ts": fetched_ms,
            "note_url": f"https://www.xiaohongshu.com/explore/{n['note_id']}",
            "source_keyword": tags[0], "xsec_token": "",
        }
    elif platform == "douyin":
        rec = {
            "aweme_id": n["note_id"], "aweme_type": "0" if n["note_type"] == "video" else "68",
            "title": desc, "desc": desc, "create_time": n["published"], "user_id": uid,
            "sec_uid": "MS4wLjABAAAA" + uid, "nickname": nick, "avatar": "",
            "liked_count": counts["likes"], "collected_count": counts["collects"],
            "comment_count": counts["comments"], "share_count": counts["shares"],
            "ip_location": "浙江", "last_modify_ts": fetched_ms,
            "aweme_url": f"https://www.douyin.com/video/{n['note_id']}", "cover_url": "",
            "video_download_url": "", "source_keyword": tags[0],
        }
    elif platform == "bilibili":
        rec = {
            "video_id": n["note_id"], "video_type": "video", "title": n["title"][:500],
            "desc": desc[:500], "create_time": n["published"], "user_id": uid, "nickname": nick,
            "avatar": "", "liked_count": counts["likes"], "video_play_count": counts["views"],
            "video_favorite_count": counts["collects"], "video_share_count": counts["shares"],
            "video_coin_count": counts["coins"], "video_comment": counts["comments"],
            "last_modify_ts": fetched_ms,
            "video_url": f"https://www.bilibili.com/video/av{n['note_id']}", "video_cover_url": "",
            "source_keyword": tags[0],
        }
    elif platform == "kuaishou":
        rec = {
            "video_id": n["note_id"],
            "video_type": "VIDEO" if n["note_type"] == "video" else "HORIZONTAL_ATLAS",
            "title": n["title"], "desc": desc, "create_time": n["published"] * 1000,
            "user_id": uid, "nickname": nick, "avatar": "", "liked_count": counts["likes"],
            "viewd_count": counts["views"], "last_modify_ts": fetched_ms,
            "video_url": f"https://www.kuaishou.com/short-video/{n['note_id']}",
            "video_cover_url": "", "video_play_url": "", "source_keyword": tags[0],
        }
    elif platform == "weibo":
        rec = {
            "note_id": n["note_id"], "content": n["title"] + "\n" + desc,
            # the exporter's create_time is 8 h off (local time read as UTC); create_date_time is right
            "create_time": n["published"] + 8 * 3600,
            "create_date_time": _local(n["published"]) + "+08:00",
            "liked_count": counts["likes"], "comments_count": counts["comments"],
            "shared_count": counts["shares"], "last_modify_ts": fetched_ms,
            "note_url": f"https://m.weibo.cn/detail/{n['note_id']}", "ip_location": "北京",
            "user_id": uid, "nickname": nick, "gender": "f", "profile_url": "", "avatar": "",
            "source_keyword": tags[0],
        }
    else:
        raise ValueError(f"no MediaCrawler layout for platform {platform!r}")
    if schema == "v2026":
        for k in ("user_id", "sec_uid", "avatar", "gender", "ip_location"):
            rec.pop(k, None)
        rec["creator_hash"] = n["author_id"]
        rec["nickname"] = mask_nickname(nick)
    return rec


def spider_xhs_record(n: dict, counts: dict) -> dict:
    """Spider_XHS ``info.json`` of one Xiaohongshu note."""
    return {
        "note_id": n["note_id"], "note_url": f"https://www.xiaohongshu.com/explore/{n['note_id']}",
        "note_type": "视频" if n["note_type"] == "video" else "图集", "user_id": n["raw_id"],
        "home_url": f"https://www.xiaohongshu.com/user/profile/{n['raw_id']}",
        "nickname": n["nickname"], "avatar": "", "title": n["title"] or "无标题",
        "desc": _body_with_tags("xiaohongshu", n["body"], n["tags"]),
        "liked_count": counts["likes"], "collected_count": counts["collects"],
        "comment_count": counts["comments"], "share_count": counts["shares"],
        "video_cover": None, "video_addr": None, "image_list": [], "tags": n["tags"],
        "upload_time": _local(n["published"]), "ip_location": "未知",
    }


def xhs_downloader_record(n: dict, counts: dict, fetched: int) -> dict:
    """One XHS-Downloader ``explore_data`` row (all TEXT, Chinese column names)."""
    return {
        "采集时间": _local(fetched, "%Y-%m-%d_%H:%M:%S"), "作品ID": n["note_id"],
        "作品类型": "视频" if n["note_type"] == "video" else "图文", "作品标题": n["title"],
        "作品描述": _body_with_tags("xiaohongshu", n["body"], n["tags"]),
        "作品标签": " ".join(n["tags"]), "发布时间": _local(n["published"], "%Y-%m-%d_%H:%M:%S"),
        "最后更新时间": _local(n["published"] + 60, "%Y-%m-%d_%H:%M:%S"),
        "收藏数量": counts["collects"], "评论数量": counts["comments"], "分享数量": counts["shares"],
        "点赞数量": counts["likes"], "作者昵称": n["nickname"], "作者ID": n["raw_id"],
        "作者链接": f"https://www.xiaohongshu.com/user/profile/{n['raw_id']}",
        "作品链接": f"https://www.xiaohongshu.com/explore/{n['note_id']}", "下载地址": "", "动图地址": "",
    }


def _csv_bytes(records: list[dict], bom: bool) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(records)
    return (("\ufeff" if bom else "") + buf.getvalue()).encode("utf-8")


def _dumps(rec: dict) -> str:
    return json.dumps(rec, ensure_ascii=False)


def write_note_files(
    platform: str, day: str, fmt: tuple[str, str, str], records: list[dict], *, broken: dict
) -> list[NoteFile]:
    """The files of one (platform, day, format) group; ``broken`` maps record index -> defect.

    A defect is an extra, broken copy of the record placed just before the intact one, so the note
    itself always arrives intact (and, being later in the file, wins anyway).
    """
    exporter, file_type, schema = fmt
    if exporter == "spider_xhs":
        return [
            NoteFile(f"{r['note_id']}_info.json", json.dumps(r, ensure_ascii=False, indent=4).encode(),
                     exporter, file_type, schema, 1)
            for r in records
        ]
    if exporter == "xhs_downloader":
        return [NoteFile(f"xhs_downloader_explore_data_{day}.csv", _csv_bytes(records, bom=True), exporter, "csv", schema, len(records))]
    name = f"{(_CSV_PREFIX if file_type == 'csv' else _MC_PREFIX)[schema]}_contents_{day}.{file_type}"
    rows, malformed = [], []
    for i, rec in enumerate(records):
        defect = broken.get(i)
        if defect == "unparseable_count":
            bad = dict(rec)
            key = next(k for k in bad if k in ("liked_count", "comment_count", "comments_count"))
            bad[key] = "一些"
            rows.append(bad)
            malformed.append({"row": len(rows), "line": len(rows) if file_type == "jsonl" else None,
                              "reason": "unparseable_count", "note_id": _note_id(rec)})
        elif defect == "truncated_json" and file_type == "jsonl":
            line = _dumps(rec)
            rows.append(line[: len(line) // 2])
            malformed.append({"row": len(rows), "line": len(rows), "reason": "truncated_json", "note_id": _note_id(rec)})
        rows.append(rec)
    if file_type == "jsonl":
        text = "".join((r if isinstance(r, str) else _dumps(r)) + "\n" for r in rows)
        content = text.encode()
    elif file_type == "json":
        content = json.dumps(rows, ensure_ascii=False, indent=4).encode()
    else:
        content = _csv_bytes(rows, bom=True)
    return [NoteFile(name, content, exporter, file_type, schema, len(rows), malformed)]


def _note_id(rec: dict) -> str:
    return str(rec.get("note_id") or rec.get("aweme_id") or rec.get("video_id"))


def note_fields(world, rows: pd.DataFrame) -> list[dict]:
    """Plain per-note dicts (ids, texts, creator, times) of the given notes rows."""
    creators = world.creators
    c = rows["creator"].to_numpy()
    frame = pd.DataFrame(
        {
            "note_id": rows["note_id"].to_numpy(),
            "title": rows["title"].to_numpy(),
            "body": rows["body"].to_numpy(),
            "tags": [t.split("|") for t in rows["tags"].to_numpy()],
            "note_type": rows["note_type"].to_numpy(),
            "published": rows["published"].to_numpy().astype(int),
            "raw_id": creators["raw_id"].to_numpy()[c],
            "author_id": creators["author_id"].to_numpy()[c],
            "nickname": creators["nickname"].to_numpy()[c],
        }
    )
    return frame.to_dict("records")


def fetched_ms(day_start: int) -> int:
    """When the exporter ran: end of the delivery day, in epoch ms."""
    return int((day_start + 23 * 3600) * 1000)

