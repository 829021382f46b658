"""Every text the bot shows, by the key the handlers ask for, in English (the gettext msgid).

The handlers look texts up by key (`reply.t("intake.ask_order")`, and computed keys such as
`f"status.{status}"`); this table is where each key's English wording is written and marked
(`N_`, or `Nn_` with the value that is the count where the text is about a count), so
`pybabel extract` finds every text. Chinese lives in bot/texts/zh_CN/LC_MESSAGES/bot.po (domain
`bot`, read by bot/i18n.py). Telegram HTML: <b>, <i>, <code>; values in {braces} are filled in.
A key ending in `_web` is the web chat's wording of the key without it (bot/replies.py).
"""

from __future__ import annotations

from typing import Final

from tickets.catalogs import N_, Nn_, Plural

MESSAGES: Final[dict[str, str | Plural]] = {
    # menu
    "menu.greeting": N_("Hello {name}! I'm the after-sales assistant of {shop}. How can I help?"),
    "menu.greeting_short": N_("Hello {name}! I'm the after-sales assistant of {shop}."),
    "menu.greeting_web": N_("Hello! I'm the after-sales assistant of {shop}. How can I help?"),
    "menu.greeting_short_web": N_("Hello! I'm the after-sales assistant of {shop}."),
    "menu.prompt": N_("What would you like to do?"),
    "menu.btn_new": N_("📝 New request"),
    "menu.btn_mine": N_("📋 My requests"),
    "menu.btn_human": N_("🙋 Talk to a person"),
    "menu.btn_language": N_("🌐 Language / 语言"),
    "menu.help": N_(
        "I'm the after-sales assistant of {shop}. Here I can:\n"
        "• 📝 New request: a refund, a return, an exchange, a complaint or a delivery problem "
        "for one of your orders; you can send photos, see the estimated refund and submit it;\n"
        "• 📋 My requests: where each request stands and what comes next; send a return's "
        "tracking number or book a pickup; withdraw a request;\n"
        "• 💬 while a request is open, whatever you write or send here goes to it, and we "
        "answer here.\n"
        "To reach a person, tap 🙋 Talk to a person: one of our team answers you here.\n"
        "Commands: /menu the menu · /cancel drop the request being filled in · /language 中文 / "
        "English"
    ),
    # language
    "language.prompt": N_("Choose your language / 请选择语言:"),
    "language.set": N_("Done: I'll write in English from now on."),
    # nav
    "nav.back": N_("⬅️ Back"),
    "nav.cancel": N_("✖️ Cancel"),
    "nav.done": N_("✅ Done"),
    "nav.skip": N_("Skip ➡️"),
    "nav.confirm": N_("✅ Submit"),
    "nav.cancelled": N_("Cancelled: nothing was sent."),
    # intake
    "intake.ask_order": N_(
        "Which order is it about? Type the order number (it's in your order confirmation) and "
        "the <b>last 4 digits</b> of the phone number on the order after it, to show it's "
        "yours: <code>SO12345 8000</code>."
    ),
    "intake.ask_order_recent": N_(
        "Which order is it about? Pick one of your recent orders, or type another order number."
    ),
    "intake.order_bad_format": N_(
        "An order number has only letters, digits and - _ . — please type it again."
    ),
    "intake.order_not_found": N_(
        "I can't find order <code>{order_no}</code>. Please check the number and type it again."
    ),
    "intake.ask_proof": N_(
        "To keep your order safe, please show it's yours: tap the button below to share your "
        "Telegram phone number, or type the <b>last 4 digits</b> of the phone number on the "
        "order."
    ),
    "intake.btn_share_contact": N_("📱 Share my phone number"),
    "intake.proof_nav": N_("Or go back:"),
    "intake.proof_failed": Nn_(
        "That doesn't match the phone number on the order. {left} attempt left.",
        "That doesn't match the phone number on the order. {left} attempts left.",
        "left",
    ),
    "intake.proof_locked": N_(
        "That didn't match. For your security, please tap 🙋 Talk to a person to continue with "
        "this order."
    ),
    "intake.proof_limit": N_(
        "For your security, no more checks of this order can be made today. Please tap 🙋 Talk "
        "to a person: a member of our team will help you."
    ),
    "intake.proof_no_phone": N_(
        "This order has no phone number I can check. Please tap 🙋 Talk to a person."
    ),
    "intake.proof_other_contact": N_(
        "Please share your own contact with the button below, not someone else's."
    ),
    "intake.proof_how": N_(
        "Please type only the last 4 digits of the phone number on the order, or share your "
        "contact with the button."
    ),
    "intake.ask_proof_web": N_(
        "To keep your order safe, please show it's yours: type the <b>last 4 digits</b> of "
        "the phone number on the order."
    ),
    "intake.proof_how_web": N_(
        "Please type only the last 4 digits of the phone number on the order."
    ),
    "intake.linked_elsewhere_web": N_(
        "This order is already followed from another chat. Please tap 🙋 Talk to a person."
    ),
    "intake.linked_elsewhere": N_(
        "This order belongs to another Telegram account. Please tap 🙋 Talk to a person."
    ),
    "intake.proof_ok": N_("Thank you: order <code>{order_no}</code> is confirmed as yours."),
    "intake.ask_kind": N_("What do you need for order <code>{order_no}</code>?"),
    "intake.kinds_unavailable": N_("Not possible for this order right now:"),
    "intake.kinds_none": N_(
        "{why}\n\n✍️ Just write your message here: one of our team will answer you."
    ),
    "intake.kind_typed": N_(
        "✓ Your message about order <code>{order_no}</code> is with our team "
        "(<code>{case_no}</code>). We'll answer you here."
    ),
    "intake.kind_note": N_("ℹ️ {note}"),
    "intake.kind_unavailable_line": N_("• {kind}: {why}"),
    "intake.ask_items": N_("Which items, and how many? Tap + and −, then ✅ Done."),
    "intake.item_button": N_("{title} · {qty}/{max}"),
    "intake.item_none_left": N_("{title} · already in a request"),
    "intake.items_none_available": N_(
        "Every item of this order is already in a request or refunded."
    ),
    "intake.items_pick_one": N_("Please choose at least one item (tap +)."),
    "intake.items_most": N_("You bought {bought}; {most} is the most you can return."),
    "intake.items_most_taken": N_(
        "You bought {bought}; the others are already in another request, so {most} is the "
        "most you can return now."
    ),
    "intake.ask_reason": N_("What is the reason?"),
    "intake.item_chosen": N_("About: {title} ×{qty}"),
    "intake.ask_description": N_(
        "Describe the problem in a few words, or just send a photo of it (or tap Skip)."
    ),
    "intake.description_too_long": N_("Please keep it under {limit} characters."),
    "intake.ask_evidence": N_(
        "Send photos of the problem (several at once is fine), a video or a file. Tap ✅ Done "
        "when you're finished. Files so far: {count}."
    ),
    "intake.ask_evidence_required": N_(
        "{need} Several at once is fine; tap ✅ Done when you're finished. Files so far: {count}."
    ),
    "intake.evidence_received": Nn_(
        "Received, {count} file so far. Send more, or tap ✅ Done.",
        "Received, {count} files so far. Send more, or tap ✅ Done.",
        "count",
    ),
    "intake.evidence_ready": Nn_(
        "Received, {count} file. That's all we need: check your request and submit it "
        "(you can still send more).",
        "Received, {count} files. That's all we need: check your request and submit it "
        "(you can still send more).",
        "count",
    ),
    "intake.evidence_required": N_("Not yet, please: {need}"),
    "intake.evidence_limit": Nn_(
        "That's the most one request can take ({limit} file). Tap ✅ Done to go on.",
        "That's the most one request can take ({limit} files). Tap ✅ Done to go on.",
        "limit",
    ),
    "intake.evidence_noted": N_("Noted, added to your description. Send photos, or tap ✅ Done."),
    "intake.media_too_large": N_(
        "This file is too large (the limit is {limit_mb} MB). Please send a smaller one."
    ),
    "intake.media_not_image": N_("I couldn't read this photo. Please take it again and send it."),
    "intake.media_kept": N_("Got your file: it will be attached to your request."),
    "intake.start_with_photo": N_("Got it, thank you: I'll attach it to your request."),
    "intake.preview_title": N_("<b>Please check your request:</b>"),
    "intake.preview_order": N_("Order: <code>{order_no}</code>"),
    "intake.preview_kind": N_("Request: {kind}"),
    "intake.preview_reason": N_("Reason: {reason}"),
    "intake.preview_items": N_("Items:"),
    "intake.preview_item": N_("• {title} ×{qty}"),
    "intake.preview_description": N_("Description: {description}"),
    "intake.preview_evidence": N_("Photos and files: {count}"),
    "intake.preview_refund": N_(
        "Estimated refund: <b>{amount}</b> (the final amount is confirmed when we review it)"
    ),
    "intake.preview_confirm": N_("Submit it?"),
    "intake.ready_to_send": N_(
        "You have a request ready to send. Send it, discard it and start a new one, or keep "
        "editing it?"
    ),
    "intake.btn_send_ready": N_("✅ Send it"),
    "intake.btn_discard_ready": N_("🗑 Discard it, start a new one"),
    "intake.btn_keep_editing": N_("✏️ Keep editing"),
    "intake.ready_discarded": N_("Discarded: that request was not sent."),
    "intake.duplicate": N_(
        "Order <code>{order_no}</code> already has a request in progress: "
        "<code>{case_no}</code>. Just write here and it goes to that case."
    ),
    "intake.no_longer_possible": N_(
        "Something changed on this order in the meantime, so that request can't go through as "
        "it is. Please choose again."
    ),
    "intake.kind_has_case": N_("already in case {case_no}"),
    "intake.added_to_case": N_(
        "✓ Added to your case <code>{case_no}</code>: our team sees it there and will answer "
        "you here."
    ),
    "intake.guide_text_expected": N_("Please type your answer (or use the buttons)."),
    "intake.guide_button_expected": N_("Please choose with the buttons."),
    "intake.guide_unsupported": N_(
        "I can't use stickers, voice messages or locations here: please write or send a photo."
    ),
    "intake.guide_stale": N_("That button belongs to an earlier step."),
    "intake.back": N_("Going back."),
    # refund
    "refund.item": N_("• {title} ×{qty}: you paid {amount}"),
    "refund.deduction": N_("• − {amount}: {what}"),
    "refund.addition": N_("• + {amount}: {what}"),
    "refund.route": N_("↩︎ {amount} back to {via}, {low}-{high} days after we issue the refund"),
    "refund.route_at_once": N_("↩︎ {amount} back to {via}, as soon as we issue the refund"),
    "refund.via_alipay": N_("your Alipay"),
    "refund.via_wechat": N_("your WeChat Pay"),
    "refund.via_wechat_pay": N_("your WeChat Pay"),
    "refund.via_card": N_("your bank card"),
    "refund.via_credit_card": N_("your bank card"),
    "refund.via_bank_transfer": N_("your bank account"),
    "refund.via_balance": N_("your store balance"),
    "refund.via_store_balance": N_("your store balance"),
    "refund.via_points": N_("your points"),
    "refund.via_coupon": N_("your coupon"),
    "refund.via_other": N_("the way you paid"),
    "refund.rule_already": N_("already refunded"),
    "refund.rule_presale_unpaid": N_("presale balance not paid"),
    "refund.rule_not_returned": N_("not in the returned parcel"),
    "refund.rule_gift": N_("the free gift you keep"),
    "refund.rule_restock": N_("restocking fee"),
    "refund.rule_exchange": N_("the replacement's price"),
    "refund.rule_shipping_share": N_("your share of the shipping"),
    "refund.rule_freight": N_("return shipping reimbursed"),
    "refund.rule_free_shipping": N_(
        "shipping fee: the items you keep are below the free-shipping amount"
    ),
    "refund.rule_free_shipping_back": N_("free-shipping fee given back"),
    "refund.rule_resettle": N_("discount: the items you keep are below the promotion's amount"),
    "refund.rule_resettle_back": N_("promotion discount given back"),
    "refund.rule_refused_out": N_("shipping to you (parcel refused at delivery)"),
    "refund.rule_refused_back": N_("shipping back (parcel refused at delivery)"),
    "refund.rule_override_out": N_("shipping to you (exception at your request)"),
    "refund.rule_order_cap": N_("already refunded on this order"),
    "refund.rule_other": N_("other adjustment"),
    # kind
    "kind.refund_only": N_("💰 Refund only"),
    "kind.return_refund": N_("📦 Return and refund"),
    "kind.exchange": N_("🔁 Exchange"),
    "kind.complaint": N_("📣 Complaint"),
    "kind.delivery": N_("🚚 Delivery problem"),
    # reason
    "reason.quality_defect": N_("Quality problem"),
    "reason.damaged_in_transit": N_("Damaged in transit"),
    "reason.wrong_item": N_("Wrong item sent"),
    "reason.missing_item": N_("Item missing"),
    "reason.not_as_described": N_("Not as described"),
    "reason.late_delivery": N_("Late delivery"),
    "reason.no_reason": N_("7-day no-reason return"),
    "reason.size_fit": N_("Size or fit"),
    "reason.changed_mind": N_("Changed my mind"),
    "reason.service": N_("Service"),
    "reason.other": N_("Something else"),
    "reason.question": N_("A question"),
    # status
    "status.draft": N_("draft"),
    "status.submitted": N_("waiting for review"),
    "status.needs_info": N_("waiting for your answer"),
    "status.awaiting_return": N_("waiting for you to ship it back"),
    "status.pickup_booked": N_("pickup booked: waiting for the courier"),
    "status.in_transit": N_("on its way back to us"),
    "status.inspecting": N_("being inspected"),
    "status.refund_pending": N_("refund in progress"),
    "status.exchange_shipping": N_("replacement on its way"),
    "status.refused": N_("refused"),
    "status.escalated": N_("escalated"),
    "status.resolved": N_("resolved"),
    "status.refunded": N_("refunded"),
    "status.closed": N_("closed"),
    "status.cancelled": N_("withdrawn"),
    # next
    "next.draft": N_("finish and submit the request."),
    "next.submitted": N_("we review it and answer you here."),
    "next.needs_info": N_("please send what we asked for (just write or send photos here)."),
    "next.awaiting_return": N_("ship the parcel back and send us the tracking number."),
    "next.pickup_booked": N_(
        "have the parcel packed for the courier; it is on its way back to us once collected."
    ),
    "next.in_transit": N_("we inspect the items when the parcel arrives."),
    "next.inspecting": N_("we tell you the result of the inspection."),
    "next.refund_pending": N_("the refund is being paid."),
    "next.exchange_shipping": N_("your replacement is on its way."),
    "next.refused": N_("write here if you want to add something or talk it over."),
    "next.escalated": N_("the platform is looking at it; we keep you posted."),
    "next.resolved": N_("nothing: it is resolved."),
    "next.refunded": N_("the money is on its way back to you."),
    "next.closed": N_("nothing: it is closed."),
    "next.cancelled": N_("nothing: it is withdrawn."),
    # cases
    "cases.none": N_("You have no open requests. Tap 📝 New request to start one."),
    "cases.header": N_("Your open requests:"),
    "cases.line": N_("<code>{case_no}</code> · {kind}\nStatus: {status}\nNext: {next}"),
    "cases.btn_track": N_("📦 I've shipped it: enter the tracking number"),
    "cases.btn_withdraw": N_("Withdraw this request"),
    "cases.ask_tracking": N_(
        "Type the tracking number of your return parcel for <code>{case_no}</code>."
    ),
    "cases.tracking_bad": N_(
        "A tracking number has 6 to 40 letters or digits. Please type it again."
    ),
    "cases.tracking_saved": N_(
        "Thank you! Tracking number <code>{tracking_no}</code> is recorded for "
        "<code>{case_no}</code>."
    ),
    "cases.confirm_withdraw": N_("Withdraw request <code>{case_no}</code>? This cannot be undone."),
    "cases.btn_withdraw_yes": N_("Yes, withdraw it"),
    "cases.not_possible": N_(
        "That's no longer possible for <code>{case_no}</code> (it is {status})."
    ),
    "cases.message_added": N_(
        "✓ Added to your case <code>{case_no}</code>. We'll answer you here."
    ),
    "cases.script_answered": N_(
        "✓ Noted for <code>{case_no}</code>: <b>{choice}</b>. We'll take care of it and tell "
        "you here."
    ),
    "cases.named_unknown": N_(
        "I can't find request <code>{case_no}</code> among yours. Please check the number, or "
        "tap 📋 My requests to see your requests."
    ),
    "cases.named_finished": N_(
        "Request <code>{case_no}</code> is finished ({status}), so nobody follows it any "
        "more. To reach a person about it, tap 🙋 Talk to a person."
    ),
    "cases.btn_pickup": N_("🚚 Book a pickup"),
    "cases.btn_refund_anyway": N_("💰 Refund anyway (shipping both ways mine)"),
    "cases.btn_send_back": N_("📦 Send the item back to me"),
    "cases.refund_anyway_taken": N_(
        "✓ Noted for <code>{case_no}</code>: we'll refund what you paid less the shipping "
        "both ways ({shipping}), back to your original payment method. You'll hear from us "
        "when it's issued."
    ),
    "cases.send_back_taken": N_(
        "✓ Noted for <code>{case_no}</code>: we'll ship the item back to you free of charge "
        "and let you know when it's on its way."
    ),
    "cases.due_customer_shipping": N_("Please ship it by: {due}"),
    "cases.due_customer_reply": N_("Please answer by: {due}"),
    "cases.due_shop": N_("We'll get back to you by: {due}"),
    # pickup ("pickup.day" is a Babel date pattern, not words: EEE weekday, d day, MMM month)
    "pickup.ask_slot": N_(
        "When should the courier come for <code>{case_no}</code>? Choose a time slot:"
    ),
    "pickup.day": N_("EEE d MMM"),
    "pickup.slot_am": N_("{day} · morning {start}-{end}"),
    "pickup.slot_pm": N_("{day} · afternoon {start}-{end}"),
    "pickup.ask_address": N_(
        "Where should the courier pick it up? The order's address is:\n"
        "<b>{address}</b>\n"
        "Tap 📍 to use it, or type another address."
    ),
    "pickup.ask_address_none": N_(
        "Where should the courier pick it up? Please type the full address."
    ),
    "pickup.btn_use_address": N_("📍 Use this address"),
    "pickup.address_too_short": N_(
        "A courier needs more to find you: please type the full address, with the street, the "
        "number and the building (at least {min} letters or digits)."
    ),
    "pickup.address_too_long": N_(
        "That address is too long: please keep it under {max} characters."
    ),
    "pickup.address_no_letters": N_(
        "An address needs words, not only numbers: please type the street, the number and the "
        "building."
    ),
    "pickup.slot_gone": N_("That time slot is no longer available: please choose again."),
    "pickup.booked": N_(
        "🚚 Pickup booked for <code>{case_no}</code>: {slot}, at {address}. Please have the "
        "parcel packed and ready."
    ),
    # satisfaction
    "satisfaction.btn_score": N_("{score} ⭐"),
    "satisfaction.btn_skip": N_("Skip ➡️"),
    "satisfaction.ask_comment": N_(
        "Thank you for your rating: {score}/5! Is there anything we could do better? Write it "
        "here, or tap Skip."
    ),
    "satisfaction.thanks": N_("Thank you! Your feedback helps us do better."),
    "satisfaction.not_possible": N_("This case can't be rated (any more)."),
    # human
    "human.prompt": N_("Write your message and one of us will answer you here."),
    "human.prompt_case": N_(
        "Just write here: your messages go to your case <code>{case_no}</code> and one of us "
        "answers you."
    ),
    "human.opened": N_(
        "✓ Your message is with our team (case <code>{case_no}</code>). We'll answer you here."
    ),
    # error
    "error.generic": N_(
        "Sorry, something went wrong on our side and it has been reported. What you entered "
        "before is kept: tap a button to go on."
    ),
    "error.busy": N_("Sorry, we're very busy right now. Please try again in a minute."),
    "error.not_found": N_("Sorry, I couldn't find that. Please check and try again."),
    "error.forbidden": N_("Sorry, that belongs to another account."),
    "error.conflict": N_("That changed in the meantime. Please have a look in 📋 My requests."),
    "error.invalid": N_("Sorry, I couldn't accept that. Please check and try again."),
    "error.media_download": N_("Sorry, I couldn't receive your file. Please send it again."),
    # agents
    "agents.unreachable": N_(
        "⚠️ Case {case_no}: the customer blocked the bot and cannot be reached on Telegram. "
        "Please contact them another way."
    ),
    "agents.btn_take": N_("🙋 Take it"),
    "agents.btn_panel": N_("🔗 Open in the panel"),
    "agents.taken": N_("✅ <code>{case_no}</code> is now handled by {agent}."),
    "agents.taken_toast": N_("Done: {case_no} is yours."),
    "agents.already_yours": N_("{case_no} is already yours."),
    "agents.taken_by_other": N_(
        "{case_no} is already handled by {agent}. To change that, reassign it in the panel."
    ),
    "agents.not_linked": N_(
        "Your Telegram account (id {user_id}) is not linked to an agent. Please ask an admin "
        "to link it to your agent account, then try again."
    ),
    "agents.not_possible": N_("Not possible on {case_no}: {why}"),
    "agents.reply_sent": N_("✉️ Sent to the customer of <code>{case_no}</code>."),
    "agents.reply_no_case": N_(
        "I can't tell which case this is for: reply to a card that names a case."
    ),
    "agents.reply_empty": N_("A reply needs words, a photo or a file for the customer."),
    # web: the web chat page's own words (api/chat/, templates/chat/chat.html), plain text
    "web.title": N_("After-sales chat"),
    "web.placeholder": N_("Write a message…"),
    "web.send": N_("Send"),
    "web.offline": N_("Connection lost: reconnecting…"),
    "web.online": N_("Connected"),
    "web.switch": N_("中文"),
    "web.busy": N_("Too many messages: please wait a moment."),
    "web.camera": N_("📷"),
    "web.camera_label": N_("Take or choose photos"),
    "web.attach": N_("📎"),
    "web.attach_label": N_("Send photos, videos or files"),
    "web.uploading": N_("Sending {name}…"),
    "web.upload_failed": N_("{name} could not be sent: {reason}"),
    "web.too_large": N_("Too large to send here."),
    "web.forget": N_("Log out"),
    "web.forget_confirm": N_(
        "Forget this conversation on this device? You can come back to your requests by "
        "proving your order again."
    ),
    "web.link_expired": N_("This chat link has expired."),
    "web.link_invalid": N_(
        "This chat link is not valid: it may have been changed or copied incompletely."
    ),
    "web.link_prove": N_(
        "You can still open the chat and type your order number with the last 4 digits of the "
        "phone number on the order."
    ),
    "web.link_open": N_("Open the chat"),
}
