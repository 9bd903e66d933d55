"""The interface's two languages: English and Simplified Chinese (the seed's language).

English text is the key (as in gettext): templates call ``_("Log in")`` and get
the Chinese when the viewer reads Chinese. The language comes from the ``lang``
cookie the switcher sets, else from the browser's Accept-Language, else English.
The strings the browser client needs travel with each page as a JSON block
(``js_catalog``), so one catalog serves the pages and the JavaScript.
"""
from __future__ import annotations

from flask import g, request

COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
DEFAULT = "en"
# code -> the language's own name (what the switcher shows)
LANGUAGES = {"en": "English", "zh-Hans": "简体中文"}

# English msgid -> Simplified Chinese. Service error messages (English, from the
# service layer) are listed too, so a failed form reads well in both languages.
ZH: dict[str, str] = {
    # -- frame, navigation, accounts
    "Chat": "聊天",
    "Chats": "聊天",
    "Groups": "群组",
    "People": "找人",
    "Notices": "通知",
    "API tokens": "API 令牌",
    "Log in": "登录",
    "Log out": "退出登录",
    "Main": "主导航",
    "Skip to content": "跳到正文",
    "Language": "语言",
    "Change": "切换",
    "Your profile": "我的资料",
    "Account": "账户",
    "Username": "用户名",
    "Password": "密码",
    "Password again": "再次输入密码",
    "Create an account": "注册账户",
    "Create account": "注册",
    "New here?": "第一次来？",
    "Have an account?": "已有账户？",
    "(3–32 letters, digits, _ . -)": "（3–32 个字母、数字或 _ . -）",
    "(8–128 characters)": "（8–128 个字符）",
    "The two passwords differ.": "两次输入的密码不一致。",
    "Welcome, {name}!": "欢迎，{name}！",
    "Language changed.": "语言已切换。",
    # -- chat screen
    "Conversations": "会话",
    "New group": "新建群组",
    "Find people": "找人",
    "No conversations yet.": "还没有会话。",
    "Find people or groups to start one.": "去找人或群组，开始聊天吧。",
    "Pick a conversation": "选择一个会话",
    "Choose someone on the left, or find people and groups to talk to.":
        "从左侧选择一个会话，或去找人、找群组聊天。",
    "Back to conversations": "返回会话列表",
    "Group info": "群组信息",
    "Profile": "资料",
    "Messages": "消息",
    "Load older messages": "加载更早的消息",
    "Loading…": "加载中…",
    "This is the beginning of the conversation.": "这是会话的开始。",
    "No messages yet. Say hello!": "还没有消息，打个招呼吧！",
    "Message": "消息",
    "Write a message": "输入消息",
    "Enter sends, Shift+Enter starts a new line": "Enter 发送，Shift+Enter 换行",
    "Send": "发送",
    "New messages": "新消息",
    "Notes to self": "给自己的笔记",
    "group": "群组",
    "members": "成员",
    # -- chat client (static/js)
    "Connecting…": "正在连接…",
    "Connected": "已连接",
    "You are offline. Reconnecting in {s} s…": "连接已断开，{s} 秒后重连…",
    "You are offline. Reconnecting…": "连接已断开，正在重连…",
    "Reconnect now": "立即重连",
    "Your session has ended. Please log in again.": "登录已失效，请重新登录。",
    "Sending…": "发送中…",
    "Sent": "已发送",
    "Seen": "已读",
    "Not sent": "未发送",
    "Retry": "重试",
    "You": "你",
    "you": "你",
    "{name} is typing…": "{name} 正在输入…",
    "{names} are typing…": "{names} 正在输入…",
    "Someone is typing…": "有人正在输入…",
    "Today": "今天",
    "Yesterday": "昨天",
    "{n} unread": "{n} 条未读",
    "New message from {name}": "来自 {name} 的新消息",
    "No answer from the server. Check your connection and retry.":
        "服务器没有回应。请检查网络后重试。",
    "The message is too long.": "消息太长了。",
    "You cannot message this user.": "你不能给这位用户发消息。",
    "You can send 3 messages until they reply or you follow each other.":
        "在对方回复或互相关注之前，你最多只能发 3 条消息。",
    "You are sending too fast. Wait a moment and retry.": "发送太快了，请稍等片刻再试。",
    "The server is busy; nothing was stored. Retry in a moment.":
        "服务器繁忙，消息没有保存。请稍后重试。",
    "Not found.": "没有找到。",
    "Something went wrong: {reason}": "出错了：{reason}",
    "You are no longer a member of this group.": "你已不是这个群组的成员。",
    "Could not load the conversation.": "无法加载会话。",
    # -- notices
    "Notifications": "通知",
    "Mark all read": "全部标为已读",
    "All notices": "全部通知",
    "No notices.": "没有通知。",
    "{name} followed you.": "{name} 关注了你。",
    "{name} added you to {group}.": "{name} 把你加入了 {group}。",
    "{name} removed you from {group}.": "{name} 把你移出了 {group}。",
    "{name} deleted the group {group}.": "{name} 解散了群组 {group}。",
    "someone": "有人",
    "a group": "某个群组",
    "Notices marked read.": "通知已标为已读。",
    # -- people and profiles
    "Search people": "搜索用户",
    "Search by name": "按用户名搜索",
    "Search": "搜索",
    "Nobody found.": "没有找到用户。",
    "This is you.": "这是你自己。",
    "You follow {name}.": "你关注了 {name}。",
    "You do not follow {name}.": "你没有关注 {name}。",
    "{name} follows you.": "{name} 关注了你。",
    "{name} does not follow you.": "{name} 没有关注你。",
    "You block {name}.": "你屏蔽了 {name}。",
    "{name} has blocked you.": "{name} 屏蔽了你。",
    "Joined": "加入于",
    "Follow": "关注",
    "Unfollow": "取消关注",
    "Block": "屏蔽",
    "Unblock": "取消屏蔽",
    "You follow {name} now.": "你已关注 {name}。",
    "You no longer follow {name}.": "你已取消关注 {name}。",
    "{name} is blocked.": "已屏蔽 {name}。",
    "{name} is no longer blocked.": "已取消屏蔽 {name}。",
    "Block {name}? They will not be able to send you private messages.":
        "屏蔽 {name}？对方将无法再给你发私信。",
    # -- groups
    "Find groups": "查找群组",
    "Find a group by name": "按名称查找群组",
    "Found": "搜索结果",
    "No group matches.": "没有匹配的群组。",
    "My groups": "我的群组",
    "You are in no group yet.": "你还没有加入任何群组。",
    "you own it": "你是群主",
    "owner": "群主",
    "Name": "名称",
    "Description": "简介",
    "Icon URL": "图标网址",
    "(http or https, optional)": "（http 或 https，可选）",
    "Create": "创建",
    "Open the chat": "进入聊天",
    "Join the group": "加入群组",
    "Join": "加入",
    "Leave the group": "退出群组",
    "Leave this group?": "确定退出这个群组？",
    "Members": "成员",
    "Remove": "移除",
    "Remove {name} from the group?": "把 {name} 移出群组？",
    "Settings": "设置",
    "Save": "保存",
    "Add a member by username": "按用户名添加成员",
    "Add": "添加",
    "Hand the group over to": "把群组转让给",
    "Transfer ownership": "转让群主",
    "Hand the group over? You will become an ordinary member.":
        "确定转让群组？你将成为普通成员。",
    "Danger zone": "危险操作",
    "Delete the group": "解散群组",
    "Delete this group and all its messages? This cannot be undone.":
        "解散这个群组并删除全部消息？此操作无法撤销。",
    "Cancel": "取消",
    "Confirm": "确定",
    "Join the group to read and write in it.": "加入群组后才能阅读和发言。",
    "Group “{name}” created.": "群组“{name}”已创建。",
    "You joined the group.": "你已加入群组。",
    "You left the group.": "你已退出群组。",
    "Group saved.": "群组已保存。",
    "{name} was added.": "已添加 {name}。",
    "{name} was invited.": "已邀请 {name}。",
    "{name} invited you to {group}.": "{name} 邀请你加入 {group}。",
    "Member removed.": "成员已移除。",
    "The group has a new owner.": "群组已转让。",
    "Group deleted.": "群组已解散。",
    "Choose a member.": "请选择一位成员。",
    "There is no user called “{name}”.": "没有名为“{name}”的用户。",
    "{n} member": "{n} 位成员",
    "{n} members": "{n} 位成员",
    # -- tokens
    "Scripts authenticate with": "脚本使用以下方式认证：",
    "Your new token:": "你的新令牌：",
    "Copy it now: it is not shown again.": "请立即复制：它不会再次显示。",
    "Token created. Copy it now: it is not shown again.": "令牌已创建。请立即复制：它不会再次显示。",
    "Token revoked.": "令牌已撤销。",
    "e.g. backup script": "例如：备份脚本",
    "Create token": "创建令牌",
    "Revoke": "撤销",
    "Revoke this token? Scripts using it stop working.": "撤销这个令牌？使用它的脚本将无法工作。",
    "No tokens.": "没有令牌。",
    "token": "令牌",
    "created": "创建于",
    # -- errors
    "Back to your conversations": "返回会话",
    "Something went wrong on our side.": "服务器出了点问题。",
    "Error {status}": "错误 {status}",
    # service and validation messages (English as the service raises them)
    "wrong username or password": "用户名或密码错误",
    "too many failed logins for this user; try again in 15 minutes":
        "该用户登录失败次数过多，请 15 分钟后再试",
    "that username is taken": "该用户名已被使用",
    "username must be 3 to 32 characters of letters, digits, _ . -":
        "用户名须为 3 到 32 个字母、数字或 _ . -",
    "password must be 8 to 128 characters": "密码须为 8 到 128 个字符",
    "no such user": "没有这位用户",
    "no such group": "没有这个群组",
    "no such token": "没有这个令牌",
    "this user has blocked you": "对方屏蔽了你",
    "you cannot follow yourself": "不能关注自己",
    "you cannot block yourself": "不能屏蔽自己",
    "you are not a member of this group": "你不是这个群组的成员",
    "only the group's owner can do that": "只有群主可以这样做",
    "only members can see who is in the group": "只有成员才能查看成员列表",
    "the owner cannot leave; hand the group over or delete it":
        "群主不能退出群组；请先转让或解散群组",
    "the new owner must be a member of the group": "新群主必须是群组成员",
    "that user is not a member of the group": "该用户不是群组成员",
    "name must not be empty": "名称不能为空",
    "name is longer than 64 characters": "名称不能超过 64 个字符",
    "description is longer than 500 characters": "简介不能超过 500 个字符",
    "icon must be an http or https URL": "图标必须是 http 或 https 网址",
    "q is longer than 32 characters": "搜索词不能超过 32 个字符",
    "q is longer than 64 characters": "搜索词不能超过 64 个字符",
    "log in first": "请先登录",
    "not allowed": "不允许这样做",
    "not found": "没有找到",
    "bad request": "请求无效",
    "too many requests, slow down": "请求太频繁，请稍后再试",
    "the server is busy; nothing was stored, retry with the same client_id":
        "服务器繁忙，没有保存任何内容，请重试",
    "This form has expired. Reload the page and try again.": "表单已过期，请刷新页面后重试。",
    "Not Found": "页面不存在",
}

# The msgids the browser client looks up with t("...") (static/js/*.js).
JS_MSGIDS = (
    "Connecting…", "Connected", "You are offline. Reconnecting in {s} s…",
    "You are offline. Reconnecting…", "Reconnect now",
    "Your session has ended. Please log in again.", "Sending…", "Sent", "Seen", "Not sent",
    "Retry", "You", "you", "{name} is typing…", "{names} are typing…", "Someone is typing…",
    "Today", "Yesterday", "{n} unread", "New message from {name}",
    "No answer from the server. Check your connection and retry.",
    "The message is too long.", "You cannot message this user.",
    "You can send 3 messages until they reply or you follow each other.",
    "You are sending too fast. Wait a moment and retry.",
    "The server is busy; nothing was stored. Retry in a moment.", "Not found.",
    "Something went wrong: {reason}", "You are no longer a member of this group.",
    "Could not load the conversation.", "Load older messages", "Loading…",
    "This is the beginning of the conversation.", "No messages yet. Say hello!",
    "No conversations yet.", "Find people or groups to start one.", "Notes to self",
    "Group info", "Profile", "group", "{n} member", "{n} members",
    "No notices.", "{name} followed you.", "{name} added you to {group}.",
    "{name} invited you to {group}.",
    "{name} removed you from {group}.", "{name} deleted the group {group}.", "someone",
    "a group", "Cancel", "Confirm", "Chats", "Log in",
)


def pick_language() -> str:
    """The viewer's language: the switcher's cookie, else Accept-Language, else English."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for tag, _quality in request.accept_languages:
        tag = tag.lower()
        if tag.startswith("zh"):
            return "zh-Hans"  # the only Chinese we have; better than English for zh-TW too
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def current_language() -> str:
    """The language of this request (picked once, then kept on ``g``)."""
    if "lang" not in g:
        g.lang = pick_language()
    return g.lang


def translate(msgid: str, lang: str | None = None, **params) -> str:
    """``msgid`` in the viewer's language, with ``{name}`` placeholders filled in."""
    lang = lang or current_language()
    text = ZH.get(msgid, msgid) if lang == "zh-Hans" else msgid
    return text.format(**params) if params else text


def translate_plural(singular: str, plural: str, n: int, **params) -> str:
    """The singular or plural msgid for ``n`` (Chinese has one form for both)."""
    return translate(singular if n == 1 else plural, n=n, **params)


def js_catalog(lang: str | None = None) -> dict[str, str]:
    """The strings the browser client needs, translated (empty for English: msgids are English)."""
    lang = lang or current_language()
    if lang == "en":
        return {}
    return {m: translate(m, lang) for m in JS_MSGIDS}


def template_context() -> dict:
    """What every template gets: ``_``, ``_n``, the language and the switcher's choices."""
    return {"_": translate, "_n": translate_plural, "lang": current_language(),
            "languages": LANGUAGES, "js_catalog": js_catalog}
