"""The demo shop behind `aftersales demo`: agents, about fifty orders and a case in every status.
Over 500 lines as one file: it is mostly data (the demo's orders and each case's story); the
loader is its last part.

Everything is made through the real core (create_agent, upsert_order, open_case,
perform_action, add_reply, add_customer_message), never by writing rows directly, so the demo's
cases carry the same events, routing, notices and refunds a real shop's would, and a change to
the lifecycle that breaks a story here breaks `aftersales demo` loudly instead of leaving a
demo that the product itself could never have produced.

The history is laid out relative to the `now` it is given: orders over the last three weeks,
cases over the last ten days, each step of a case a few hours after the one before, all before
`now`. Nothing is random, so two loads at the same `now` write the same data.

The photos demo customers send are pictures drawn by the host (api/demo_pictures.py, with
Pillow; the CLI passes the drawing in, so the core never imports an imaging library for it),
kept through the attachment store in `settings.media_dir` like any customer's (cleaned,
thumbnailed, named by their SHA-256) and recorded as the bot records them. The same picture
always has the same bytes, so loading again writes no new file; a load rolled back leaves its
files behind, unreferenced and harmless, as a bot update that fails after downloading a photo
does.

Loading is idempotent: demo orders are numbered DEMO-0001..; when any exists, the orders and
cases are left alone (the CLI commits a load as one transaction, so a load is all or nothing),
and only missing demo agents are created. The summary always prints the demo log-ins.

The demo passwords are in this file, so they are public: the demo is for a trial database,
never for a shop's production one (its customers' phone numbers and Telegram ids are made up
and would merge with real customers who happen to share them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tickets.auth import create_agent, verify_password
from tickets.cases.conversation import add_customer_message, add_reply, record_satisfaction
from tickets.cases.events import record_event
from tickets.cases.lifecycle import perform_action as _perform
from tickets.cases.opening import open_case
from tickets.chat_links import link_for_order
from tickets.context import Actor, Context
from tickets.exceptions import DomainError, InvalidInput, NotFound
from tickets.models import (
    Agent,
    Attachment,
    EventType,
    Order,
    OrderStatus,
    OutboxMessage,
    Role,
    Ticket,
)
from tickets.orders.store import upsert_order
from tickets.policy.rules import load_policy
from tickets.schemas import (
    ActionRequest,
    CustomerIn,
    OrderIn,
    OrderLineIn,
    PaymentIn,
    ReplyCreate,
    TicketCreate,
)
from tickets.settings import Settings
from tickets.storage import AttachmentStore, limits_from

ORDER_PREFIX = "DEMO-"

# ---------------------------------------------------------------- agents


@dataclass(frozen=True)
class DemoAgent:
    username: str
    role: Role
    group: str | None
    display_name: str
    password: str
    language: str = "zh-CN"


# Public on purpose: printed by `aftersales demo` so a trial user can log in at once.
AGENTS: tuple[DemoAgent, ...] = (
    DemoAgent("admin", Role.admin, None, "管理员 Admin", "demo-password-1", "en"),
    DemoAgent("lead", Role.lead, "service", "客服主管 陈琳 (Lena)", "demo-password-2"),
    DemoAgent("xiaomei", Role.agent, "service", "小美 (客服)", "demo-password-3"),
    DemoAgent("tom", Role.agent, "service", "Tom Baker (service, EN)", "demo-password-4", "en"),
    DemoAgent("laowang", Role.agent, "logistics", "老王 (物流)", "demo-password-5"),
    DemoAgent("qc.zhang", Role.agent, "quality", "张工 (质检)", "demo-password-6"),
    DemoAgent("finance.li", Role.agent, "finance", "李会计 (财务)", "demo-password-7"),
    DemoAgent("finlead", Role.lead, "finance", "周经理 (财务主管)", "demo-password-8"),
)

# ---------------------------------------------------------------- customers and catalogue


@dataclass(frozen=True)
class DemoCustomer:
    name: str
    phone: str
    language: str
    address: str
    telegram_user_id: int | None = None
    email: str | None = None


# The tables below are data, kept one record per line or block so they read like a shop's
# export; the formatter would explode them into one field per line.
# fmt: off

# Chinese customers use 139-1234-00xx; the English ones use ranges reserved for fiction
# (555-01xx in North America, 020 7946 0xxx in the UK, 0491 570 xxx in Australia).
CUSTOMERS: dict[str, DemoCustomer] = {
    "lin": DemoCustomer("林晓雨", "13912340001", "zh-CN", "上海市徐汇区漕溪北路 88 号 1201 室",
                        900100001),
    "wang": DemoCustomer("王建国", "13912340002", "zh-CN", "北京市朝阳区建国路 93 号院 5 号楼"),
    "chen": DemoCustomer("陈静", "13912340003", "zh-CN", "广州市天河区体育西路 191 号",
                         900100003),
    "zhang": DemoCustomer("张伟", "13912340004", "zh-CN", "杭州市西湖区文三路 478 号"),
    "liu": DemoCustomer("刘芳", "13912340005", "zh-CN", "成都市锦江区春熙路 12 号 3 单元",
                        900100005),
    "zhao": DemoCustomer("赵磊", "13912340006", "zh-CN", "南京市鼓楼区中山北路 30 号"),
    "sun": DemoCustomer("孙丽", "13912340007", "zh-CN", "武汉市武昌区中南路 7 号",
                        900100007),
    "zhou": DemoCustomer("周杰", "13912340008", "zh-CN", "深圳市南山区科技园南区 6 栋"),
    "wu": DemoCustomer("吴敏", "13912340009", "zh-CN", "苏州市工业园区星湖街 328 号",
                       900100009),
    "zheng": DemoCustomer("郑浩", "13912340010", "zh-CN", "西安市雁塔区小寨东路 1 号"),
    "emily": DemoCustomer("Emily Carter", "+1 415 555 0101", "en",
                          "1200 Example Ave, Apt 4, San Francisco, CA 94110, USA",
                          900200001, "emily.carter@example.com"),
    "james": DemoCustomer("James Miller", "+1 415 555 0102", "en",
                          "Room 808, 1 Century Ave, Pudong, Shanghai", None,
                          "james.miller@example.com"),
    "sophie": DemoCustomer("Sophie Turner", "+44 20 7946 0103", "en",
                           "Flat 3, 21 Sanlitun Rd, Chaoyang, Beijing", 900200003,
                           "sophie.turner@example.org"),
    "daniel": DemoCustomer("Daniel Brooks", "+1 415 555 0104", "en",
                           "17 Wulumuqi Rd (M), Jing'an, Shanghai", None,
                           "daniel.brooks@example.net"),
    "olivia": DemoCustomer("Olivia Bennett", "+61 491 570 105", "en",
                           "9F, 100 Xinhua Rd, Changning, Shanghai", 900200005,
                           "olivia.bennett@example.com"),
}


@dataclass(frozen=True)
class Product:
    zh: str
    en: str
    category: str
    price: str  # CNY
    no_reason_return: bool = True


CATALOGUE: dict[str, Product] = {
    "DOWN-JKT-M": Product("轻薄羽绒服 M码 雾蓝", "Light down jacket, M, mist blue", "apparel",
                          "399.00"),
    "TEE-WHT-L": Product("有机棉T恤 白色 L码", "Organic cotton T-shirt, white, L", "apparel",
                         "89.00"),
    "JEANS-32": Product("直筒牛仔裤 32码", "Straight-leg jeans, W32", "apparel", "259.00"),
    "RUN-42": Product("缓震跑步鞋 42码", "Cushioned running shoes, EU 42", "shoes", "499.00"),
    "BOOT-38": Product("切尔西短靴 38码", "Chelsea boots, EU 38", "shoes", "689.00"),
    "EARBUD-PRO": Product("降噪蓝牙耳机 Pro", "Noise-cancelling earbuds Pro", "electronics",
                          "899.00"),
    "PWRBANK-20K": Product("20000毫安 快充充电宝", "20,000 mAh fast-charge power bank",
                           "electronics", "159.00"),
    "KB-MECH": Product("87键机械键盘 茶轴", "87-key mechanical keyboard, brown switches",
                       "electronics", "329.00"),
    # Food and opened cosmetics are not returnable without a reason (hygiene, shelf life).
    "TEA-LJ-250": Product("明前西湖龙井 250g", "West Lake Longjing tea, 250 g", "food",
                          "168.00", False),
    "NUTS-MIX": Product("每日坚果 30袋装", "Daily mixed nuts, 30 packs", "food", "119.00",
                        False),
    "COFFEE-500": Product("云南单品咖啡豆 500g", "Yunnan single-origin coffee beans, 500 g",
                          "food", "138.00", False),
    "SERUM-30": Product("修护精华液 30ml", "Repair serum, 30 ml", "cosmetics", "420.00"),
    "LIPSTICK-03": Product("哑光口红 #03 枫叶红", "Matte lipstick #03 maple red", "cosmetics",
                           "220.00"),
    "MUG-SET": Product("手绘陶瓷马克杯 4只装", "Hand-painted ceramic mugs, set of 4", "home",
                       "128.00"),
    "BEDSHEET": Product("纯棉四件套 1.8m 床", "Cotton bedding set, 1.8 m bed", "home",
                        "359.00"),
    "PILLOW-LTX": Product("泰国乳胶枕", "Natural latex pillow", "home", "199.00"),
    "DUVET-PRE": Product("【双11预售】95白鹅绒被 200x230", "[Pre-sale] 95% goose down duvet",
                         "home", "899.00"),
    "BOOK-3BODY": Product("《三体》单册", "The Three-Body Problem (one volume)", "books",
                          "31.00"),
    "BOOK-PY": Product("《流畅的Python》第2版 英文版", "Fluent Python, 2nd edition", "books",
                       "428.00"),
    # Made to the customer's measure: never a no-reason return.
    "SUIT-MTO": Product("量体定制西装 藏青", "Made-to-measure suit, navy", "made_to_order",
                        "2680.00", False),
    "RING-ENG": Product("刻字银戒指", "Engraved silver ring", "made_to_order", "360.00", False),
}

# fmt: on

# ---------------------------------------------------------------- orders


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int = 1
    discount: str = "0"  # on the whole line
    price: str | None = None  # when not the catalogue's CNY price (a foreign-currency order)


@dataclass(frozen=True)
class DemoOrder:
    """One order; its dates follow from `days_ago` (placed) and its status."""

    no: int
    customer: str
    status: OrderStatus
    method: str
    days_ago: float
    lines: tuple[Line, ...]
    order_discount: str = "0"
    shipping: str = "0"
    free_shipping_threshold: str | None = None
    platform: str = "shop"
    currency: str = "CNY"
    exchange_rate: str | None = None
    # Pre-sale: (deposit, days between deposit and balance); the balance is the rest.
    presale: tuple[str, float] | None = None

    @property
    def order_no(self) -> str:
        return f"{ORDER_PREFIX}{self.no:04d}"


U = OrderStatus
# The order `aftersales demo` prints a web chat link for: delivered, with no case yet.
CHAT_ORDER = "DEMO-0046"
# fmt: off
ORDERS: tuple[DemoOrder, ...] = (
    # Orders that carry a demo case (the case of the same number below).
    DemoOrder(1, "lin", U.delivered, "alipay", 9, (Line("JEANS-32"),), shipping="8.00"),
    DemoOrder(2, "emily", U.delivered, "card", 8, (Line("RUN-42"),)),
    DemoOrder(3, "wang", U.delivered, "wechat", 12, (Line("COFFEE-500", 2),), platform="douyin"),
    DemoOrder(4, "chen", U.delivered, "wechat", 9, (Line("NUTS-MIX", 2), Line("TEA-LJ-250")),
              order_discount="20.00", free_shipping_threshold="99.00"),
    DemoOrder(5, "liu", U.delivered, "alipay", 8, (Line("TEA-LJ-250"),), platform="taobao"),
    DemoOrder(6, "james", U.delivered, "card", 10, (Line("LIPSTICK-03"),)),
    DemoOrder(7, "zhao", U.delivered, "balance", 9, (Line("EARBUD-PRO"),),
              order_discount="50.00"),
    DemoOrder(8, "sun", U.delivered, "wechat", 10, (Line("TEE-WHT-L"),), shipping="6.00"),
    DemoOrder(9, "sophie", U.delivered, "card", 11, (Line("BOOT-38"),)),
    DemoOrder(10, "zhou", U.delivered, "alipay", 10, (Line("DOWN-JKT-M"),), platform="jd"),
    DemoOrder(11, "wu", U.delivered, "alipay", 12, (Line("KB-MECH"),)),
    DemoOrder(12, "zheng", U.paid, "alipay", 16, (Line("DUVET-PRE"),), order_discount="50.00",
              presale=("100.00", 12)),
    DemoOrder(13, "lin", U.delivered, "wechat", 13, (Line("MUG-SET", 2, "16.00"),)),
    DemoOrder(14, "daniel", U.delivered, "card", 14, (Line("PWRBANK-20K"),)),
    DemoOrder(15, "chen", U.delivered, "alipay", 15, (Line("RUN-42"),), platform="taobao"),
    DemoOrder(16, "olivia", U.delivered, "card", 13, (Line("TEE-WHT-L"),)),
    DemoOrder(17, "wang", U.delivered, "wechat", 15, (Line("SERUM-30"),)),
    DemoOrder(18, "zhang", U.delivered, "balance", 7, (Line("NUTS-MIX"),)),
    # The foreign-currency order: paid in USD, the rate to CNY recorded at purchase.
    DemoOrder(19, "emily", U.delivered, "card", 16,
              (Line("BOOK-PY", price="59.99"), Line("MUG-SET", price="18.00", discount="3.00")),
              shipping="12.00", currency="USD", exchange_rate="7.1180", platform="shopify"),
    DemoOrder(20, "liu", U.shipped, "wechat", 7, (Line("BEDSHEET"), Line("PILLOW-LTX", 2)),
              order_discount="30.00"),
    DemoOrder(21, "zhao", U.delivered, "alipay", 12, (Line("JEANS-32"), Line("TEE-WHT-L")),
              platform="jd"),
    DemoOrder(22, "sophie", U.shipped, "card", 5, (Line("COFFEE-500"),), shipping="10.00"),
    DemoOrder(23, "sun", U.delivered, "wechat", 16, (Line("BEDSHEET"),), order_discount="20.00"),
    DemoOrder(24, "wu", U.refused, "alipay", 9, (Line("PWRBANK-20K"),), shipping="8.00"),
    DemoOrder(25, "zheng", U.delivered, "bank_transfer", 14, (Line("BOOK-3BODY", 3, "9.00"),)),
    DemoOrder(26, "olivia", U.delivered, "card", 16, (Line("PILLOW-LTX"),)),
    DemoOrder(27, "zhou", U.delivered, "alipay", 16, (Line("BOOT-38"),), platform="taobao"),
    DemoOrder(28, "daniel", U.delivered, "card", 14, (Line("KB-MECH"),)),
    DemoOrder(29, "chen", U.delivered, "wechat", 15, (Line("SERUM-30"), Line("LIPSTICK-03")),
              order_discount="40.00"),
    DemoOrder(30, "lin", U.delivered, "alipay", 6, (Line("BOOT-38"),)),
    DemoOrder(31, "wang", U.delivered, "wechat", 7, (Line("PWRBANK-20K"),)),
    DemoOrder(32, "emily", U.shipped, "card", 5, (Line("LIPSTICK-03"), Line("SERUM-30")),
              shipping="15.00"),
    DemoOrder(33, "zhang", U.delivered, "bank_transfer", 20, (Line("SUIT-MTO"),)),
    # Orders without a case: the rest of a shop's month.
    DemoOrder(34, "liu", U.unpaid, "wechat", 0.5, (Line("LIPSTICK-03"),)),
    DemoOrder(35, "james", U.unpaid, "card", 1, (Line("BOOK-PY"),)),
    DemoOrder(36, "zhou", U.unpaid, "alipay", 2, (Line("RING-ENG"),)),
    DemoOrder(37, "sun", U.cancelled, "wechat", 6, (Line("TEA-LJ-250", 2),)),
    DemoOrder(38, "daniel", U.cancelled, "card", 8, (Line("EARBUD-PRO"),)),
    DemoOrder(39, "wu", U.cancelled, "balance", 4, (Line("DOWN-JKT-M"),)),
    DemoOrder(40, "zhao", U.paid, "alipay", 1, (Line("KB-MECH"), Line("PWRBANK-20K")),
              order_discount="25.00"),
    DemoOrder(41, "sophie", U.paid, "card", 3, (Line("RING-ENG"),)),
    DemoOrder(42, "chen", U.paid, "wechat", 0.8, (Line("BEDSHEET"), Line("PILLOW-LTX")),
              order_discount="40.00"),
    DemoOrder(43, "zheng", U.shipped, "bank_transfer", 3, (Line("BOOK-3BODY", 3),),
              shipping="8.00", free_shipping_threshold="99.00"),
    DemoOrder(44, "olivia", U.shipped, "card", 2.5, (Line("COFFEE-500"),)),
    DemoOrder(45, "lin", U.shipped, "alipay", 3, (Line("SERUM-30", 1, "42.00"),
                                                   Line("LIPSTICK-03", 1, "22.00"))),
    DemoOrder(46, "wang", U.delivered, "wechat", 18, (Line("TEA-LJ-250", 2), Line("NUTS-MIX")),
              order_discount="15.00"),
    DemoOrder(47, "zhang", U.delivered, "balance", 19, (Line("JEANS-32"), Line("TEE-WHT-L", 2)),
              order_discount="30.00", platform="douyin"),
    DemoOrder(48, "emily", U.delivered, "card", 21, (Line("MUG-SET"),)),
    DemoOrder(49, "james", U.refused, "card", 6, (Line("RUN-42"),)),
    DemoOrder(50, "liu", U.delivered, "alipay", 20, (Line("DOWN-JKT-M"),), platform="taobao"),
)
# fmt: on

# ---------------------------------------------------------------- cases


@dataclass(frozen=True)
class Act:
    """An action through perform_action, by an agent's username, "customer" or "system"."""

    by: str
    action: str
    after: float  # hours after the previous step
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """An agent's reply to the customer, or an internal note."""

    by: str
    text: str
    after: float
    internal: bool = False


@dataclass(frozen=True)
class Say:
    """A message from the customer, with `photos` pictures attached to it."""

    text: str
    after: float
    photos: int = 0


@dataclass(frozen=True)
class Rate:
    """The customer's rating of a finished case (1-5), as the bot records it."""

    score: int
    after: float
    comment: str = ""


Step = Act | Reply | Say | Rate


@dataclass(frozen=True)
class DemoCase:
    order: int
    kind: str
    reason: str
    items: tuple[tuple[str, int], ...]
    description: str
    hours_ago: float  # when the customer opened it
    channel: str = "telegram"
    photos: int = 0  # pictures sent with the request (see "photos" below)
    steps: tuple[Step, ...] = ()


def _passed(sku: str, quantity: int) -> dict[str, Any]:
    """An inspection's parameters finding every unit of `sku` resalable (the core assumes no
    outcome: the inspector says what they found)."""
    return {"results": [{"sku": sku, "quantity": quantity, "outcome": "resalable"}]}


def _note(by: str, text: str, after: float) -> Reply:
    return Reply(by, text, after, internal=True)


# Their final statuses are listed in DEMO_STATUSES; a test checks the two agree.
# fmt: off
CASES: tuple[DemoCase, ...] = (
    # ---- submitted: fresh in the queue
    DemoCase(1, "return_refund", "size_fit", (("JEANS-32", 1),),
             "裤子腰围偏小，穿着很紧，想退货退款。吊牌还在，没洗过。", 3,
             steps=(Say("拍了照片：吊牌都在，没有穿过外出。", 0.1, photos=2),
                    Say("请问退货运费是谁出呀？", 0.1))),
    DemoCase(2, "exchange", "size_fit", (("RUN-42", 1),),
             "The shoes are half a size too small. Could I swap them for EU 43?", 6, "web",
             steps=(Act("lead", "assign", 0.5, {"assignee": "tom"}),
                    _note("tom", "EU 43 in stock (2 pairs). Asked for a photo of the soles "
                          "to confirm they are unworn.", 0.6),
                    Reply("tom", "Hi Emily, happy to swap them. Could you send a photo of the "
                          "soles so we can confirm they are unworn?", 0.1))),
    DemoCase(3, "complaint", "service", (),
             "客服回复很慢，问了三次发货时间都没人理。", 1.5, "phone",
             steps=(_note("xiaomei", "客户来电，情绪比较激动，已先致歉，待主管回电。", 0.3),
                    Act("xiaomei", "assign", 0.1, {"assignee": "lead", "priority": "high"}))),
    DemoCase(4, "refund_only", "missing_item", (("NUTS-MIX", 1),),
             "买了两盒每日坚果，包裹里只有一盒。", 20,
             steps=(Reply("xiaomei", "您好，已收到反馈，我们正在核对仓库出库称重记录，"
                          "请稍候。", 0.8),
                    _note("xiaomei", "出库称重 1.32kg，与两盒相符，请物流组查途中是否破损"
                          "丢件。", 0.5),
                    Act("xiaomei", "assign", 0.2, {"group": "logistics"}))),
    DemoCase(32, "delivery", "late_delivery", (),
             "My order was supposed to arrive yesterday and tracking shows nothing new.", 4,
             "web"),
    # ---- needs_info
    DemoCase(5, "return_refund", "quality_defect", (("TEA-LJ-250", 1),),
             "茶叶打开后有霉味，不敢喝。", 10,
             steps=(Reply("qc.zhang", "您好，麻烦拍一张茶叶和包装上生产日期的照片发给我们，"
                          "以便尽快处理。", 1.5),)),
    DemoCase(6, "return_refund", "not_as_described", (("LIPSTICK-03", 1),),
             "The shade is much darker than the product photos.", 30, "web", photos=1,
             steps=(Act("qc.zhang", "request_info", 3,
                        {"reason": "Please send a photo of a swatch in daylight next to the "
                         "colour on the product page."}),)),
    # ---- awaiting_return
    DemoCase(7, "return_refund", "no_reason", (("EARBUD-PRO", 1),),
             "七天无理由退货，耳机未拆封。", 50,
             steps=(Act("xiaomei", "approve", 2, {"note": "未拆封，符合七天无理由退货"}),
                    Reply("xiaomei", "已同意退货，请在 7 天内寄回售后仓，包裹内附纸条写明售后"
                          "单号。七天无理由退货的寄回运费由您承担。", 0.1),
                    Say("好的，明天寄出。", 1))),
    DemoCase(8, "exchange", "wrong_item", (("TEE-WHT-L", 1),),
             "买的白色L码，收到的是黑色的。", 70,
             steps=(Say("补充一下：吊牌上写的是 BLACK，我下单的是白色。", 2),
                    Act("xiaomei", "approve", 3),
                    Reply("xiaomei", "非常抱歉发错颜色！已同意换货，寄回运费由我们承担，"
                          "寄出后请告诉我们快递单号。", 0.1))),
    # ---- in_transit
    DemoCase(9, "return_refund", "no_reason", (("BOOT-38", 1),),
             "Changed my mind about the boots: unworn, still in the original box.", 100,
             steps=(Act("tom", "approve", 4),
                    Reply("tom", "Your return is approved. Please ship it within 7 days to the "
                          "address in the notice; the return postage is yours for a "
                          "no-reason return.", 0.1),
                    Act("customer", "mark_in_transit", 20,
                        {"tracking_no": "SF1402938475612", "carrier": "SF Express"}),
                    Say("Shipped today, tracking SF1402938475612.", 0.05))),
    # ---- pickup_booked (the courier has not come yet)
    DemoCase(10, "exchange", "size_fit", (("DOWN-JKT-M", 1),), "M码偏小，想换L码。", 80,
             steps=(Act("xiaomei", "approve", 2),
                    Reply("xiaomei", "L码有货，已为您预留。可以预约快递上门取件。", 0.1),
                    Say("请明天下午上门取件。", 3),
                    Act("xiaomei", "mark_in_transit", 0.5,
                        {"pickup": {"time": "明天 14:00-16:00",
                                    "address": "深圳市南山区科技园南区 6 栋"},
                         "carrier": "京东物流"}))),
    # ---- inspecting
    DemoCase(11, "return_refund", "quality_defect", (("KB-MECH", 1),),
             "键盘 F 键连击，视频已上传。", 120, photos=1,
             steps=(Act("qc.zhang", "approve", 5,
                        {"note": "视频中连击明显，属质量问题，往返运费由店铺承担"}),
                    Act("customer", "mark_in_transit", 24,
                        {"tracking_no": "YT7788123456", "carrier": "圆通速递"}),
                    Act("laowang", "mark_received", 40),
                    _note("qc.zhang", "已签收，明天上午上测试台复现连击。", 1))),
    # ---- refund_pending
    DemoCase(12, "refund_only", "changed_mind", (("DUVET-PRE", 1),),
             "预售的羽绒被不想要了，还没发货，申请退款（定金和尾款）。", 30,
             steps=(Reply("finance.li", "您好，预售商品尚未发货，已为您拦截发货，定金和尾款"
                          "将原路退回支付宝。", 2),
                    _note("finance.li", "已通知仓库取消备货；预售退款走定金+尾款两笔。",
                          0.1))),
    DemoCase(13, "return_refund", "no_reason", (("MUG-SET", 2),),
             "杯子花色和想象的不一样，两套都退。", 140,
             steps=(Act("xiaomei", "approve", 3),
                    Act("customer", "mark_in_transit", 20,
                        {"tracking_no": "ZTO73519846021", "carrier": "中通快递"}),
                    Act("laowang", "mark_received", 48),
                    Act("qc.zhang", "inspect", 6,
                        {"results": [{"sku": "MUG-SET", "quantity": 1, "outcome": "resalable"},
                                     {"sku": "MUG-SET", "quantity": 1, "outcome": "damaged"}],
                         "note": "第二套有一只杯口缺损，不可二次销售，已拍照留存"}),
                    Reply("qc.zhang", "您好，退回的两套杯子中一套完好，另一套有破损无法二次"
                          "销售，本次按一套退款；如有异议，可提供寄出前的照片。", 0.2),
                    Act("finance.li", "propose_refund", 3))),
    DemoCase(14, "refund_only", "missing_item", (("PWRBANK-20K", 1),),
             "The parcel arrived but the power bank was not in the box.", 170,
             "web", photos=1,
             steps=(Act("tom", "refuse", 5,
                        {"reason": "The courier's weight record matches a full parcel: please "
                         "send a photo of the opened box and the shipping label."}),
                    Say("I already sent the photos. I'm asking the platform to step in.", 10),
                    Act("customer", "escalate", 0.1,
                        {"reason": "the customer asked the platform to intervene"}),
                    _note("lead", "Platform ruled for the customer: refund without return.", 30),
                    Act("lead", "approve", 0.1),
                    Act("finance.li", "propose_refund", 2),
                    Act("finlead", "approve_refund", 1))),
    # ---- exchange_shipping
    DemoCase(15, "exchange", "size_fit", (("RUN-42", 1),), "42码偏小，换43码。", 200,
             steps=(Act("xiaomei", "approve", 2),
                    Act("customer", "mark_in_transit", 18,
                        {"tracking_no": "SF1405566778899", "carrier": "顺丰速运"}),
                    Act("laowang", "mark_received", 30),
                    Act("qc.zhang", "inspect", 5, _passed("RUN-42", 1)),
                    Act("laowang", "ship_exchange", 4,
                        {"tracking_no": "SF1409876543210", "carrier": "顺丰速运"}),
                    Reply("xiaomei", "换货的43码已发出，顺丰单号 SF1409876543210，请注意查收。",
                          0.1))),
    DemoCase(16, "exchange", "size_fit", (("TEE-WHT-L", 1),),
             "Too big, could I have a size M instead?", 150,
             steps=(Act("tom", "approve", 3),
                    Act("customer", "mark_in_transit", 22,
                        {"tracking_no": "YT7790011223", "carrier": "YTO Express"}),
                    Act("laowang", "mark_received", 36),
                    Act("qc.zhang", "inspect", 4, _passed("TEE-WHT-L", 1)),
                    _note("tom", "Size M out of stock until Thursday; customer agreed to wait.",
                          2),
                    Reply("tom", "Size M is back in stock on Thursday: we'll ship your "
                          "replacement then, with a small gift for the wait.", 0.1))),
    # ---- refused
    DemoCase(17, "return_refund", "no_reason", (("SERUM-30", 1),), "用着不太适合，申请退货。",
             190,
             steps=(Act("xiaomei", "approve", 4),
                    Act("customer", "mark_in_transit", 24,
                        {"tracking_no": "YD4312876590", "carrier": "韵达快递"}),
                    Act("laowang", "mark_received", 44),
                    Act("qc.zhang", "inspect", 6,
                        {"results": [{"sku": "SERUM-30", "quantity": 1, "outcome": "damaged"}],
                         "note": "已开封，余量约三分之二，照片已存档"}),
                    Reply("qc.zhang", "您好，退回的精华液已开封使用，不符合七天无理由退货条件"
                          "（需未拆封、可二次销售），无法退款。我们可以原样寄回给您，或为您"
                          "提供一张 20 元无门槛券。", 0.5))),
    DemoCase(18, "return_refund", "quality_defect", (("NUTS-MIX", 1),),
             "坚果有哈喇味，感觉变质了。", 60, photos=1,
             steps=(Act("xiaomei", "refuse", 3,
                        {"reason": "照片显示包装已开封一周以上，生产日期在保质期内，受潮导致的"
                         "口感变化不属于质量问题；我们可以为您补发一袋新品作为补偿。"}),)),
    # ---- escalated
    DemoCase(19, "return_refund", "not_as_described", (("BOOK-PY", 1),),
             "The book is the 1st edition, not the 2nd edition in the listing.", 220, "web",
             photos=1,
             steps=(Act("tom", "request_info", 3,
                        {"reason": "Please send a photo of the copyright page showing the "
                         "edition."}),
                    Say("Here it is: the copyright page says First Edition.", 8, photos=1),
                    _note("tom", "ISBN in the photo differs from the copy we shipped "
                          "(2nd ed.). Probably a different book.", 2),
                    Act("tom", "refuse", 0.5,
                        {"reason": "The ISBN in the photo does not match the copy we shipped "
                         "(2nd edition). If you return the book, we will check it and "
                         "refund it if it is ours."}),
                    Say("This is ridiculous, I'm opening a dispute with the platform.", 6),
                    Act("customer", "escalate", 0.1, {"reason": "dispute opened on Shopify"}),
                    Act("lead", "assign", 2, {"assignee": "lead", "priority": "high"}),
                    _note("lead", "Evidence uploaded to the platform: packing photo and ISBN "
                          "scan. Paid in USD at 7.1180 CNY/USD.", 1))),
    DemoCase(20, "delivery", "late_delivery", (), "快递三天没有更新了，是不是丢了？", 75,
             steps=(Reply("laowang", "您好，已联系快递公司核查。物流高峰期可能延迟1-2天，"
                          "我们会持续跟进。", 1),
                    _note("laowang", "韵达回复：中转站积压，预计两天内派送。", 5),
                    Say("还是没动静，我已经在平台投诉了。", 40),
                    Act("customer", "escalate", 0.1, {"reason": "平台介入：物流超时"}))),
    # ---- resolved
    DemoCase(21, "complaint", "late_delivery", (), "说好48小时发货，结果5天才发。", 110,
             steps=(Reply("xiaomei", "非常抱歉让您久等！为表歉意，已给您的账户发放一张5元"
                          "无门槛优惠券。", 1),
                    Act("xiaomei", "resolve", 0.1, {"reason": "致歉并发放5元无门槛券"}),
                    Say("好吧，谢谢。", 2),
                    Rate(3, 0.1))),
    DemoCase(22, "delivery", "late_delivery", (), "Tracking hasn't moved in two days.", 45,
             "web",
             steps=(_note("laowang", "已联系承运商：包裹在分拨中心滞留，已催派。", 2),
                    Reply("tom", "Your parcel was held at the sorting centre; the carrier has "
                          "promised delivery within 48 hours. Sorry for the wait.", 0.3),
                    Act("laowang", "resolve", 20,
                        {"reason": "carrier confirmed the parcel is out for delivery"}))),
    # ---- refunded
    DemoCase(23, "return_refund", "quality_defect", (("BEDSHEET", 1),),
             "四件套洗了一次就起球严重。", 230, photos=1,
             steps=(Act("qc.zhang", "approve", 4),
                    Act("customer", "mark_in_transit", 20,
                        {"tracking_no": "SF1401122334455", "carrier": "顺丰速运"}),
                    Act("laowang", "mark_received", 40),
                    Act("qc.zhang", "inspect", 5,
                        {"results": [{"sku": "BEDSHEET", "quantity": 1, "outcome": "damaged"}],
                         "note": "起球属面料问题，质量原因，全额退款"}),
                    Act("finance.li", "propose_refund", 2),
                    Act("finlead", "approve_refund", 1),
                    Act("finance.li", "issue_refund", 0.5),
                    Reply("finance.li", "退款已原路退回到您的微信，一般 1-3 天到账。", 0.1),
                    Rate(5, 2, "退款很快"),
                    Act("finance.li", "confirm_refund", 28))),
    DemoCase(24, "refund_only", "changed_mind", (("PWRBANK-20K", 1),),
             "快递到了我拒收了，请退款。", 90,
             steps=(Say("拒收原因：买重复了。", 0.5),
                    _note("xiaomei", "拒收包裹已退回仓库并入库。", 2),
                    Act("xiaomei", "approve", 0.2),
                    Act("finance.li", "propose_refund", 3),
                    Act("finlead", "approve_refund", 1),
                    Act("finance.li", "issue_refund", 0.5))),
    DemoCase(25, "refund_only", "missing_item", (("BOOK-3BODY", 1),),
             "三体买了三册，只收到两册。", 180,
             steps=(Act("xiaomei", "approve", 4, {"note": "仓库称重确认少一册"}),
                    Act("finance.li", "propose_refund", 3),
                    Act("finlead", "approve_refund", 1),
                    Act("finance.li", "issue_refund", 0.5),
                    Act("finance.li", "fail_refund", 30,
                        {"reason": "银行退票：收款账户已销户"}),
                    Reply("finance.li", "您好，退款被银行退回（原账户已注销），请提供新的收款"
                          "银行卡。", 0.5),
                    Say("新卡号已发给客服：尾号 8831。", 3),
                    Act("finance.li", "propose_refund", 1),
                    Act("finlead", "approve_refund", 1),
                    Act("finance.li", "issue_refund", 0.5))),
    # ---- closed
    DemoCase(26, "return_refund", "no_reason", (("PILLOW-LTX", 1),),
             "The pillow is too firm for me; unopened.", 235,
             steps=(Act("tom", "approve", 2),
                    Act("customer", "mark_in_transit", 24,
                        {"tracking_no": "EMS1122334455", "carrier": "EMS"}),
                    Act("laowang", "mark_received", 30),
                    Act("qc.zhang", "inspect", 3, _passed("PILLOW-LTX", 1)),
                    Act("finance.li", "propose_refund", 2),
                    Act("finlead", "approve_refund", 1),
                    Act("finance.li", "issue_refund", 1),
                    Say("Got the refund on my card, thanks!", 50),
                    Act("tom", "close", 1, {"reason": "refund received by the customer"}),
                    Rate(5, 0.5, "Quick and friendly."))),
    DemoCase(27, "exchange", "quality_defect", (("BOOT-38", 1),), "鞋底开胶了，穿了两次。",
             215, photos=1,
             steps=(Act("qc.zhang", "approve", 3),
                    Act("customer", "mark_in_transit", 20,
                        {"tracking_no": "JDV000123456789", "carrier": "京东物流"}),
                    Act("laowang", "mark_received", 26),
                    Act("qc.zhang", "inspect", 4,
                        {"results": [{"sku": "BOOT-38", "quantity": 1, "outcome": "damaged"}]}),
                    Act("laowang", "ship_exchange", 5,
                        {"tracking_no": "JDV000987654321", "carrier": "京东物流"}),
                    Say("新鞋收到了，没问题。", 48),
                    Act("xiaomei", "close", 1, {"reason": "换货已签收"}),
                    Rate(4, 1))),
    DemoCase(28, "complaint", "service", (), "An agent promised a callback that never came.",
             160, "web",
             steps=(Reply("tom", "I'm sorry we didn't call you back as promised. I've called "
                          "you now and added a 5 CNY coupon to your account.", 2),
                    Act("tom", "resolve", 0.1, {"reason": "apologised, called back, coupon"}),
                    Act("tom", "close", 24, {"reason": "no further questions"}),
                    Rate(2, 0.3, "Fine, but I shouldn't have had to chase it."))),
    DemoCase(29, "return_refund", "quality_defect", (("SERUM-30", 1),),
             "用了两天脸上起红疹，想退。", 200,
             steps=(Reply("qc.zhang", "您好，请补充使用部位的照片和产品批号的照片，我们会"
                          "尽快处理。", 2),
                    Act("system", "close", 73,
                        {"reason": "客户 72 小时未补充凭证，自动关闭（可重新申请）"}))),
    DemoCase(33, "return_refund", "not_as_described", (("SUIT-MTO", 1),),
             "定制西装袖长比我提交的尺寸长了 3 厘米，想退。", 210, photos=1,
             steps=(Act("xiaomei", "refuse", 4,
                        {"reason": "定制商品按您的尺寸制作，不支持七天无理由退货；我们可以"
                         "免费为您修改袖长，来回运费由店铺承担。"}),
                    Say("那就免费改袖长吧。", 6),
                    _note("xiaomei", "已安排裁缝修改袖长，物流单另行跟进。", 1),
                    Act("xiaomei", "close", 0.2, {"reason": "客户接受免费修改方案"}))),
    # ---- cancelled
    DemoCase(30, "exchange", "size_fit", (("BOOT-38", 1),), "想换大一码。", 26,
             steps=(Say("不好意思，又试了一下其实挺合适的，不换了。", 4),
                    Act("customer", "cancel", 0.1, {"reason": "客户自行撤销：尺码合适"}))),
    DemoCase(31, "return_refund", "changed_mind", (("PWRBANK-20K", 1),),
             "电话申请退货：不想要了。", 56, "phone",
             steps=(_note("xiaomei", "客户来电撤回申请，家人要用。", 5),
                    Act("xiaomei", "cancel", 0.1, {"reason": "客户来电撤回"}))),
)
# fmt: on

# Every status the demo leaves a case in: all of the lifecycle's but draft, which no service
# function can make (open_case starts at submitted; the bot keeps drafts in its own storage).
DEMO_STATUSES = frozenset(
    {
        "submitted",
        "needs_info",
        "awaiting_return",
        "pickup_booked",
        "in_transit",
        "inspecting",
        "refund_pending",
        "exchange_shipping",
        "refused",
        "escalated",
        "resolved",
        "refunded",
        "closed",
        "cancelled",
    }
)

# ---------------------------------------------------------------- photos

# Claims about no defect: their photos show the item unworn, with its tag, and nothing ringed.
NO_FAULT = frozenset({"size_fit", "no_reason", "changed_mind"})


class DrawPhoto(Protocol):
    """What draws a demo photo (api/demo_pictures.py `demo_photo`): image bytes that follow
    from the seed, the SKU and its category, and the shot (0: the whole product, later ones
    closer); with `defect`, the claimed defect shown, else the item unworn. The same arguments
    must give the same bytes, so a second load stores nothing new."""

    def __call__(
        self, seed: str, sku: str, category: str, shot: int = 0, defect: bool = True
    ) -> bytes: ...


@dataclass(frozen=True)
class _Photos:
    """Where the demo's photos come from (the drawing given to `load_demo`) and go (the
    attachment store)."""

    store: AttachmentStore
    draw: DrawPhoto


def _store_photos(
    photos: _Photos, ticket: Ticket, count: int, ctx: Context, label: str
) -> list[Attachment]:
    """`count` demo photos of the case's first item, kept in the store (cleaned and given a
    thumbnail like any customer's photo) and ready to record as the case's attachments."""
    item = ticket.items[0] if ticket.items else None
    sku = item.sku if item is not None else ""
    category = item.line.category if item is not None else ""
    name = f"{ticket.order.order_no if ticket.order else 'case'}-{label}".lower()
    rows = []
    for shot in range(count):
        data = photos.draw(name, sku, category, shot, defect=ticket.reason not in NO_FAULT)
        stored = photos.store.store_photo(data, original_name=f"{name}-{shot + 1}.png")
        rows.append(
            Attachment(
                kind=stored.kind,
                mime=stored.mime,
                size=stored.size,
                sha256=stored.sha256,
                storage_key=stored.storage_key,
                original_name=stored.original_name,
                created_at=ctx.now,
            )
        )
    return rows


# ---------------------------------------------------------------- loading


def load_demo(*, session: Session, settings: Settings, now: datetime, draw_photo: DrawPhoto) -> str:
    """Load the demo shop (agents, orders, cases) unless it is there; the printable summary.
    `draw_photo` draws the photos the demo's customers send (api/demo_pictures.py).

    Adds and flushes, never commits: the caller owns the transaction, so a step the core
    refuses leaves nothing half-loaded.
    """
    if now.tzinfo is None:
        raise InvalidInput("load_demo needs a timezone-aware now")
    agents, agent_notes = _ensure_agents(session, now)
    loaded = session.scalar(
        select(func.count(Order.id)).where(Order.order_no.like(f"{ORDER_PREFIX}%"))
    )
    if loaded:
        head = (
            f"The demo shop is already loaded ({loaded} demo orders, "
            f"{_demo_case_count(session)} cases): nothing was changed."
        )
    else:
        orders = _load_orders(session, now)
        ctx = Context(
            policy=load_policy(settings.policy_file),
            now=now,
            tz=settings.tz,
            case_prefix=settings.case_prefix,
        )
        photos = _Photos(AttachmentStore(settings.media_dir, limits_from(settings)), draw_photo)
        tickets = _load_cases(session, ctx, agents, orders, now, photos)
        _mark_notices_historic(session, tickets)
        session.flush()
        head = _counts(orders, tickets)
    return "\n".join(
        [head, "", *_credentials(settings, agent_notes), *_chat_link(session, settings, now)]
    )


def _ensure_agents(session: Session, now: datetime) -> tuple[dict[str, Agent], dict[str, str]]:
    """The demo agents by username, creating the missing ones; and, per agent, whether the
    printed demo password works (an agent of that name made outside the demo keeps its own)."""
    agents: dict[str, Agent] = {}
    notes: dict[str, str] = {}
    for spec in AGENTS:
        agent = session.scalar(select(Agent).where(Agent.username == spec.username))
        if agent is None:
            agent = create_agent(
                session=session,
                username=spec.username,
                role=spec.role,
                group=spec.group,
                display_name=spec.display_name,
                password=spec.password,
                now=now - timedelta(days=30),
            )
            agent.language = spec.language
            notes[spec.username] = spec.password
        elif verify_password(agent, spec.password):
            notes[spec.username] = spec.password
        else:
            notes[spec.username] = "(existed before the demo: its own password, unchanged)"
        agents[spec.username] = agent
    session.flush()
    return agents, notes


def _order_in(spec: DemoOrder, now: datetime) -> OrderIn:
    """The order as a shop would send it: dates follow the status, titles the language."""
    who = CUSTOMERS[spec.customer]
    placed = now - timedelta(days=spec.days_ago)
    paid = None if spec.status is U.unpaid else placed + timedelta(minutes=3)
    payments = None
    if spec.presale is not None:
        # Pre-sale: a deposit when ordering, the balance when the sale opens.
        deposit, gap = spec.presale
        paid = placed + timedelta(days=gap)
        lines_total = sum(
            Decimal(ln.price or CATALOGUE[ln.sku].price) * ln.quantity - Decimal(ln.discount)
            for ln in spec.lines
        )
        balance = lines_total - Decimal(spec.order_discount) + Decimal(spec.shipping)
        payments = [
            PaymentIn(
                method=spec.method,
                amount=Decimal(deposit),
                kind="deposit",
                paid_at=placed + timedelta(minutes=3),
            ),
            PaymentIn(
                method=spec.method, amount=balance - Decimal(deposit), kind="balance", paid_at=paid
            ),
        ]
    sent = spec.status in (U.shipped, U.delivered, U.refused)
    shipped = paid + timedelta(hours=20) if sent and paid is not None else None
    delivered = (
        shipped + timedelta(days=2, hours=3)
        if shipped is not None and spec.status is U.delivered
        else None
    )
    return OrderIn(
        order_no=spec.order_no,
        platform=spec.platform,
        status=spec.status,
        currency=spec.currency,
        placed_at=placed,
        paid_at=paid,
        shipped_at=shipped,
        delivered_at=delivered,
        payment_method=spec.method,
        shipping_fee=Decimal(spec.shipping),
        order_discount=Decimal(spec.order_discount),
        free_shipping_threshold=(
            Decimal(spec.free_shipping_threshold) if spec.free_shipping_threshold else None
        ),
        address=who.address,
        presale=spec.presale is not None,
        exchange_rate=Decimal(spec.exchange_rate) if spec.exchange_rate else None,
        customer=CustomerIn(
            name=who.name,
            phone=who.phone,
            email=who.email,
            telegram_user_id=who.telegram_user_id,
            language="en" if who.language == "en" else "zh-CN",
        ),
        lines=[
            OrderLineIn(
                sku=ln.sku,
                title=CATALOGUE[ln.sku].en if who.language == "en" else CATALOGUE[ln.sku].zh,
                category=CATALOGUE[ln.sku].category,
                quantity=ln.quantity,
                unit_price=Decimal(ln.price or CATALOGUE[ln.sku].price),
                discount=Decimal(ln.discount),
                no_reason_return=CATALOGUE[ln.sku].no_reason_return,
            )
            for ln in spec.lines
        ],
        payments=payments,
    )


def _load_orders(session: Session, now: datetime) -> dict[int, Order]:
    """Every demo order through upsert_order, recorded when it was placed."""
    orders: dict[int, Order] = {}
    for spec in sorted(ORDERS, key=lambda o: -o.days_ago):
        data = _order_in(spec, now)
        order, _ = upsert_order(session=session, data=data, now=data.placed_at)
        # The model defaults these to the wall clock; the demo's history has its own clock.
        order.updated_at = max(
            d
            for d in (data.placed_at, data.paid_at, data.shipped_at, data.delivered_at)
            if d is not None
        )
        if order.customer.created_at > data.placed_at:
            order.customer.created_at = data.placed_at - timedelta(days=60)
        orders[spec.no] = order
    session.flush()
    return orders


def _load_cases(
    session: Session,
    ctx: Context,
    agents: dict[str, Agent],
    orders: dict[int, Order],
    now: datetime,
    photos: _Photos,
) -> list[Ticket]:
    """Each demo case opened and worked through the service, its clock stepping forward.

    Cases are opened in the order customers sent them, so case numbers follow time as they
    would in a real queue. Photos are kept in the attachment store and recorded as the bot
    records them: those sent with the request on the case (with an evidence.added event),
    those sent later on the customer's message.
    """
    tickets: list[Ticket] = []
    for spec in sorted(CASES, key=lambda c: -c.hours_ago):
        order = orders[spec.order]
        when = now - timedelta(hours=spec.hours_ago)
        label = f"demo case on {order.order_no}"
        lang = "en" if order.customer.language == "en" else "zh-CN"
        try:
            ticket = open_case(
                session=session,
                request=TicketCreate.model_validate(
                    {
                        "kind": spec.kind,
                        "reason": spec.reason,
                        "order_no": order.order_no,
                        "items": [{"sku": sku, "quantity": q} for sku, q in spec.items],
                        "description": spec.description,
                        "channel": spec.channel,
                        "language": lang,
                    }
                ),
                actor=Actor(kind="customer", customer_id=order.customer_id),
                ctx=_at(ctx, when),
                photos=spec.photos,
            )
            if spec.photos:
                _attach_to_request(session, photos, ticket, spec.photos, _at(ctx, when))
            for i, step in enumerate(spec.steps, start=1):
                when += timedelta(hours=step.after)
                if when >= now:
                    raise InvalidInput(f"{label}: step {i} falls after now; shorten the story")
                _run_step(session, ticket, step, agents, _at(ctx, when), photos, i)
        except DomainError as exc:
            raise InvalidInput(
                f"{label} ({spec.kind}, {spec.reason}) was refused by the core: {exc.message}",
                getattr(exc, "errors", None),
            ) from exc
        tickets.append(ticket)
    return tickets


def _at(ctx: Context, when: datetime) -> Context:
    """The same rules at another moment of the demo's history."""
    return replace(ctx, now=when)


def _attach_to_request(
    session: Session, photos: _Photos, ticket: Ticket, count: int, ctx: Context
) -> None:
    """The photos sent with the request, on the case as the bot's intake leaves them."""
    rows = _store_photos(photos, ticket, count, ctx, "request")
    for row in rows:
        row.ticket = ticket
        session.add(row)
    record_event(
        session=session,
        ticket=ticket,
        type=EventType.evidence_added,
        actor=Actor(kind="customer", customer_id=ticket.customer_id),
        now=ctx.now,
        count=len(rows),
        photos=len(rows),
    )
    session.flush()


def _run_step(
    session: Session,
    ticket: Ticket,
    step: Step,
    agents: dict[str, Agent],
    ctx: Context,
    photos: _Photos,
    index: int,
) -> None:
    if isinstance(step, Say):
        rows = _store_photos(photos, ticket, step.photos, ctx, f"step{index}")
        for row in rows:
            # In the session before the service links them to the message (as the bot does).
            row.ticket = ticket
            session.add(row)
        add_customer_message(
            session=session, ticket=ticket, text=step.text, ctx=ctx, attachments=rows
        )
    elif isinstance(step, Rate):
        record_satisfaction(
            session=session, ticket=ticket, score=step.score, ctx=ctx, comment=step.comment
        )
    elif isinstance(step, Reply):
        add_reply(
            session=session,
            number=ticket.number,
            reply=ReplyCreate(text=step.text, internal=step.internal),
            actor=Actor(kind="agent", agent=agents[step.by]),
            ctx=ctx,
        )
    else:
        if step.by == "customer":
            actor = Actor(kind="customer", customer_id=ticket.customer_id)
        elif step.by == "system":
            actor = Actor(kind="system", rule="needs_info silence")
        else:
            actor = Actor(kind="agent", agent=agents[step.by])
        _perform(
            session=session,
            number=ticket.number,
            request=ActionRequest.model_validate({"action": step.action, **step.params}),
            actor=actor,
            ctx=ctx,
        )


def _mark_notices_historic(session: Session, tickets: list[Ticket]) -> None:
    """The customer notices the demo's history queued are that history, long gone: left
    pending, a delivery worker would send weeks-old notices to made-up Telegram ids at once."""
    ids = [t.id for t in tickets]
    rows = session.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id.in_(ids)))
    for row in rows:
        if row.status == "pending":
            row.status = "sent"
            row.sent_at = row.created_at
            row.attempts = 1


def _demo_case_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count(Ticket.id))
            .join(Order, Ticket.order_id == Order.id)
            .where(Order.order_no.like(f"{ORDER_PREFIX}%"))
        )
        or 0
    )


def _counts(orders: dict[int, Order], tickets: list[Ticket]) -> str:
    by_order = Counter(o.status for o in orders.values())
    by_case = Counter(t.status for t in tickets)
    by_kind = Counter(t.kind for t in tickets)

    def fmt(c: Counter[str]) -> str:
        return ", ".join(f"{k} {n}" for k, n in sorted(c.items()))

    return "\n".join(
        [
            f"Demo shop loaded: {len(orders)} orders ({fmt(by_order)}),",
            f"  {len(tickets)} cases by status: {fmt(by_case)}",
            f"  by kind: {fmt(by_kind)}",
            f"  orders are numbered {ORDER_PREFIX}0001 to {ORDER_PREFIX}{len(orders):04d}.",
        ]
    )


def _chat_link(session: Session, settings: Settings, now: datetime) -> list[str]:
    """The customer's side of the first run: a signed web chat link for a demo order."""
    if not settings.web_chat:
        return []
    try:
        link = link_for_order(
            session,
            secret=settings.secret_key,
            public_url=settings.public_url,
            order_no=CHAT_ORDER,
            now=now,
            hours=settings.web_chat_link_hours,
        )
    except NotFound:
        return []  # a shop that removed the demo order: no link to show
    return [
        "",
        f"Play the customer of {link.order_no} in the web chat (a signed link, until "
        f"{link.expires_at:%Y-%m-%d %H:%M} UTC):",
        f"  {link.url}",
    ]


def _credentials(settings: Settings, notes: dict[str, str]) -> list[str]:
    out = [f"Demo log-ins (panel: {settings.public_url}/panel):"]
    for spec in AGENTS:
        out.append(
            f"  {spec.username:<11} {spec.role.value:<6} {spec.group or 'all groups':<10} "
            f"password: {notes[spec.username]}"
        )
    out.append(
        "These passwords are published in the source code: for a demo only. Never load "
        "the demo into a production database, and change or deactivate these agents "
        "before any real use."
    )
    return out
