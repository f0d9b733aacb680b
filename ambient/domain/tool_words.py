"""The product's bilingual word map for `find_tools`: everyday words → the words our tools use.

Why a map and not only the tool texts: a voice or desktop client passes the person's own words
("把 checkout 那个回滚停一下", "keep an eye on bitcoin"), and those rarely appear in a tool's
English description. Bigrams alone cannot bridge 暂停 and "pause"; a model would, but
`find_tools` runs with no model. The map is small and owned here: a new tool needs no entry when
its description already uses the words people say, and an entry only where they differ.
Keys match as substrings of the request (lower-cased), values are tool words to add.
"""

from __future__ import annotations

WORDS: dict[str, str] = {
    # tasks: pause / resume / stop / run now / change
    "暂停": "pause",
    "停一下": "pause",
    "先停": "pause",
    "hold": "pause",
    "恢复": "resume",
    "继续": "resume",
    "重新开始": "resume",
    "unpause": "resume",
    "删除": "delete",
    "删掉": "delete",
    "删": "delete",
    "不要了": "delete",
    "取消": "delete",
    "remove": "delete",
    "get rid": "delete",
    "pull the plug": "abort stop",
    "立即": "trigger now",
    "立刻": "trigger now",
    "检查一次": "trigger run check",
    "check now": "trigger run",
    "马上": "trigger now",
    "现在就": "trigger now",
    "right now": "trigger now",
    "修改": "update config",
    "改成": "update config",
    "改为": "update config",
    "change": "update config",
    "任务": "task",
    "后台": "background task",
    "状态": "status",
    "所有任务": "list tasks",
    "哪些": "list",
    "几天": "date",
    "哪些任务": "list tasks",
    # reading: list, look at one, search
    "列出": "list",
    "记录": "list history",
    "看看": "get",
    "看一下": "get",
    "给我看": "get",
    "搜": "search",
    "where is": "state get",
    "status": "state",
    "查找": "search",
    "找一下": "search",
    "健康": "status ready",
    "进行到": "state attempts",
    "哪一步": "state attempts",
    # watches and reminders
    "监控": "watch monitor",
    "盯着": "watch monitor",
    "盯一下": "watch monitor",
    "关注": "watch monitor",
    "keep an eye": "watch monitor",
    "track": "watch monitor",
    "网页": "web page",
    "网站": "web page",
    "site": "web page",
    "关键词": "keyword",
    "价格": "threshold price metric",
    "price": "threshold metric",
    "超过": "threshold crosses",
    "低于": "threshold crosses",
    "跌破": "threshold crosses",
    "涨过": "threshold crosses",
    "涨到": "threshold crosses",
    "涨破": "threshold crosses",
    "跌到": "threshold crosses",
    "高于": "threshold crosses",
    "美元": "price threshold",
    "above": "threshold crosses",
    "below": "threshold crosses",
    "drops": "threshold crosses",
    "比特币": "bitcoin",
    "提醒": "reminder schedule",
    "remind": "reminder schedule",
    "每天": "daily schedule",
    "每周": "weekly schedule",
    "新闻": "news digest",
    "摘要": "digest",
    # briefing and greeting
    "简报": "briefing",
    "早报": "briefing",
    "晨报": "briefing",
    "汇报": "briefing",
    "brief": "briefing",
    "你好": "greet greeting",
    "早上好": "greet greeting",
    "good morning": "greet greeting",
    "重新生成": "regenerate",
    "再生成": "regenerate",
    "redo": "regenerate",
    # notifications, inbox, push
    "推送": "push channels",
    "邮箱": "email",
    "邮件": "email",
    "企业微信": "wecom",
    "钉钉": "dingtalk",
    "站内信": "inbox",
    "收件箱": "inbox",
    "消息": "messages notifications",
    "通知": "notifications push channel",
    "notification": "push channel",
    "@": "push channel email",
    "投递": "deliveries send",
    "发送": "send",
    "发一条": "send post",
    "发个": "send post",
    "发消息": "send post message",
    "发给": "send",
    "免打扰": "quiet hours",
    # system
    "系统": "system status temporal database reachable",
    "正常": "status reachable",
    "连得上": "reachable",
    "事件": "events",
    "发生": "events happened",
    # cloud
    "集群": "cluster tke",
    "节点池": "node pool",
    "节点": "node",
    "扩容": "scale desired size replicas",
    "缩容": "scale desired size replicas",
    "扩到": "scale desired size replicas",
    "缩到": "scale desired size replicas",
    "副本": "replicas",
    "工作负载": "workload deployments",
    "deployment": "workload",
    "重启": "restart",
    "日志": "logs",
    "报错": "search logs error",
    "错误": "search logs error",
    "errors": "search logs",
    "日志主题": "log topic",
    "日志集": "logset",
    "分析": "analyze",
    "指标": "metric monitor",
    "cpu": "metric",
    "内存": "metric memory",
    "告警": "alert alarm",
    "报警": "alert alarm",
    "warning": "alert alarm",
    "定时 sql": "scheduled sql",
    "仪表盘": "dashboard image",
    "截图": "dashboard image",
    "图片": "image",
    "screenshot": "dashboard image",
    "yaml": "apply",
    "应用到": "apply yaml",
    "apiversion": "apply yaml",
    # users and permissions
    "我是谁": "whoami user",
    "who am i": "whoami user",
    "logged in": "whoami user",
    "权限": "permission grant",
    "角色": "role",
    "管理员": "admin role grant",
    "设成": "grant role",
    "授权": "grant permission",
    # remediation
    "回滚": "rollback remediation approve",
    "roll back": "rollback remediation approve",
    "修复": "remediation",
    "自愈": "remediation",
    "fix": "remediation",
    "批准": "approve",
    "同意": "approve",
    "通过": "approve",
    "拒绝": "approve refuse",
    "终止": "abort stop",
    "中止": "abort stop",
    "打分": "score",
    "评分": "score",
    "严重": "severity score",
    "成功率": "success rate stats outcomes",
    "分享": "share link",
    "链接": "link",
    # discussions
    "讨论": "discussion",
    "回复": "reply",
    "项目": "projects",
    "统计": "stats totals",
    "异常": "anomalies",
    "总线": "bus",
    "初始化": "init ready",
}

# Words that say nothing about which tool (they would only add noise to BM25's sum).
STOPWORDS = frozenset(
    """a an the to of in on for at by and or is are be it me my i you your we our us please
    can could would will do does did this that these those what which how any all there here
    with from as up just now also some show tell give let where who when why am was were
    have has been their them its into than then so if not don no""".split()
)

# Each tool's own everyday words, Chinese and English: indexed with the tool (a field of its
# own, like the name), so a request in the person's words meets the tool itself, bigram for
# bigram, instead of going through a query-side entry for every phrasing. Written from what
# each tool does, the way people ask for it ("盯着", "看一下", "回滚", "暂停", "bounce"); a tool
# without an entry is still found by its name, description and arguments. A key that names no
# tool of the server is a mistake (tests/agent/test_find_tools.py checks).
TOOL_WORDS: dict[str, str] = {
    # system
    "get_status": "系统状态 服务正常吗 后台 worker 在跑 健康检查 数据库 连得上 "
    "system status healthy everything running",
    "list_events": "发生了什么 最近的事件 动态 出了什么事 触发 记录 what happened lately recent",
    "read_inbox": "站内信 站内通知 收件箱 我的通知 未读 念一下通知 unread my notifications",
    "list_deliveries": "投递记录 发出去没有 送达 发送失败 发送记录 "
    "sent delivered went out failed send",
    # tasks
    "list_tasks": "我的任务 所有任务 都在盯着哪些 在监控什么 监控列表 我的提醒 all my watches "
    "what am I watching my monitors",
    "get_task": "看一下这个任务 任务详情 最新的值 最近一次 检查结果 任务状态 现在多少 latest value "
    "how is the watch doing details what is it at current value",
    "create_web_monitor": "盯着网页 监控网站 网页变化 页面出现关键词 新文章 帮我看着 "
    "keep an eye on a site page changes mentions",
    "create_threshold_watch": "价格提醒 涨到 涨过 跌破 跌到 超过 低于 阈值 价格 币价 股价 告诉我 "
    "price alert goes above below reaches",
    "create_reminder": "提醒我 定时提醒 每天 每周 闹钟 新闻摘要 remind me every day week",
    "create_background_task": "新建后台任务 通用任务 任意类型 create a task of type",
    "pause_task": "暂停 停一下 先停 别查了 先别监控 先别响 静音 pause put on hold stop for now "
    "mute snooze silence",
    "resume_task": "恢复 继续 重新开始 再开 接着查 resume start again unpause",
    "update_task": "修改任务 改成 改一下 改到 挪到 调整 阈值改为 换一个网址 change edit set the "
    "threshold instead too chatty",
    "trigger_task": "现在就查 立即检查 马上跑一次 别等了 手动触发 check now run it now "
    "fire it now instead of waiting",
    "delete_task": "删除任务 删掉 不要了 取消 停掉 永久 remove cancel get rid of stop for good",
    # briefing
    "get_briefing": "今天的简报 早报 简报内容 说了什么 汇报 念一下简报 读简报 "
    "today's briefing this morning's briefing read it to me what does it say",
    "list_briefings": "历史简报 以前的简报 上周的简报 简报列表 past briefings earlier",
    "analyze_logs": "日志分析 分析日志 日志模式 日志异常 日志趋势 归纳 summarize logs patterns "
    "make sense of what kinds of lines",
    "create_daily_briefing": "每天早上 每日简报 定时简报 上班前准备 every morning daily briefing",
    "greet": "你好 早上好 早 小智 嗨 打招呼 hello hi morning hey",
    "regenerate_briefing": "重新生成简报 再生成一份 刷新简报 过时 更新简报 redo refresh again",
    "send_briefing": "发送简报 把简报推送 发到邮箱 发到企业微信 发到钉钉 推给我 推一份 推到手机 "
    "email push the briefing send it out to my channels shoot it over",
    "get_push_config": "推送渠道 通知渠道 推送设置 通知发到哪 告警发到哪里 免打扰时间 "
    "where do my notifications go which channels where are my alerts going do not disturb",
    "set_push_config": "设置推送 改推送渠道 通知改发 以后发到 免打扰 钉钉 企业微信 邮箱 "
    "send notifications to from now on quiet hours",
    # cloud
    "list_clusters": "集群列表 有哪些集群 k8s kubernetes 集群状态 clusters",
    "list_node_pools": "节点池 节点池大小 几台机器 node pools machines",
    "list_workloads": "工作负载 服务 部署 副本数 镜像 版本 命名空间里跑着 "
    "deployments services running deployed version",
    "list_log_topics": "日志主题 日志集 日志主题列表 哪些日志可以查 log topics",
    "search_logs": "查日志 搜日志 报错 错误日志 超时 异常日志 翻翻 请求 状态码 502 5xx "
    "grep errors timeouts in logs requests status code",
    "get_metric": "指标 监控数据 CPU 内存 使用率 延迟 曲线 cpu usage memory latency graph",
    "list_alarms": "告警 报警 告警历史 触发了哪些告警 今天的告警 alarms alerts fired",
    "scale_node_pool": "扩容节点池 缩容节点池 加机器 加节点 扩到几台 节点数 "
    "more nodes bump the node pool resize",
    "describe_dashboard_image": "截图 面板截图 仪表盘 看图 图片 图表 "
    "screenshot chart grafana picture",
    "create_node_pool": "新建节点池 加一个节点池 创建节点池 GPU 节点 add a node pool",
    "create_logset": "新建日志集 创建日志集 new logset",
    "create_log_topic": "新建日志主题 创建日志主题 new log topic",
    "create_cls_alarm": "新建告警策略 创建告警 配置告警 告警规则 报警规则 set up an alarm rule",
    "create_scheduled_sql": "定时 SQL 定时汇总 每小时统计 聚合 写到另一个主题 aggregate hourly",
    "apply_yaml": "部署 YAML 应用 manifest kubectl apply 配置清单 应用到集群",
    "scale_workload": "扩副本 缩副本 副本数 加到 个副本 扩容服务 replicas scale out up down",
    "restart_workload": "重启服务 重启一下 滚动重启 重新部署 bounce restart rollout",
    # users
    "whoami": "我是谁 我的角色 我的权限 当前用户 登录的是谁 my role my permissions",
    "grant_permission": "授权 给权限 开权限 设成管理员 加管理员 make someone admin give access",
    # remediation
    "score_alert": "告警打分 评分 严不严重 严重程度 多严重 影响 how serious how bad rate",
    "get_remediation": "修复进度 修复状态 进行到哪一步 自动修复情况 修复详情 回滚进度 "
    "how far along progress of the fix remediation status",
    "list_remediations": "修复列表 最近的自动修复 所有修复 等我处理 待处理 "
    "auto-fixes my fixes waiting pending open",
    "remediation_stats": "修复成功率 修复效果 修复统计 成功了多少 how often succeed work",
    "start_remediation": "启动自动修复 开始修复 自动处理告警 自愈 让系统自己修 自己去修 "
    "fix it automatically auto-fix let it fix itself",
    "approve_remediation": "批准 同意 通过 回滚 同意执行 确认 拒绝 放行 go ahead approved "
    "yes do it rollback sign off sign-off",
    "abort_remediation": "终止修复 中止 别再继续 停止修复 取消修复 abort stop the fix cancel",
    "share_remediation": "分享链接 报告链接 发给老板 修复报告 复盘 share link report page url "
    "writeup postmortem",
    # discussions
    "send_message": "发消息 发一条 发到讨论 说一声 通知大家 post say tell the team",
    "reply_message": "回复 回一句 回复讨论 答复 reply answer respond",
    "close_discussion": "关闭讨论 讨论结束 已经解决 关掉讨论 结案 收尾 close resolved done "
    "wrapped up wrap up shut the thread",
    "search_messages": "搜消息 找消息 搜讨论 讨论里搜 讨论里找 提到 聊天记录 哪条消息说 "
    "messages mentioning brought up who said",
    "detect_anomalies": "机器发的 机器人 自动发的 可疑消息 异常消息 bot automated machine written",
    "annotate_discussion": "标记消息 标注 打标签 标为推断 无法核实 mark label tag",
    "list_discussions": "讨论列表 我参与的讨论 有哪些讨论 discussions threads I am in",
    "read_discussion": "讨论内容 讨论的全部消息 看讨论 打开讨论 都说了什么 "
    "open the thread everything said messages of a discussion",
    "list_projects": "项目列表 哪些项目 projects",
    "get_stats": "讨论统计 谁发言最多 每个人发了多少 消息数 活跃 who talks most totals "
    "how many messages each person overall chattiest most active last post",
    "init_store": "初始化消息总线 准备总线 消息总线 bus ready set up",
}
