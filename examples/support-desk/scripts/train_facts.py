"""Train examples about policy facts: returns, prices, warranty, privacy, shipping, subscriptions.

Questions are scenarios built from templates and the knowledge documents' facts; each answer
cites the documents it relies on, in the house style (policies/style.md).
"""

from __future__ import annotations

import random
from typing import Any

from train_common import EU_PLACES, HARDWARE, US_PLACES, ex

Example = dict[str, Any]


def fact(q: str, ref: str, sources: list[str], must: list[str], juris: str | None, product: str,
          intent: str, topic: str, **meta: Any) -> Example:
    return ex("factual", q, ref, sources, must, juris=juris, product=product, intent=intent,
              tags=(f"topic:{topic}",), **meta)


def returns(rng: random.Random) -> list[Example]:
    out = []
    # only scenarios past the window: the eval split asks the within-window questions
    for n in (17, 26):
        city, country = rng.choice(EU_PLACES)
        product = rng.choice(["router", "thermostat"])
        item = rng.choice(HARDWARE[product])
        q = f"My {item} was delivered to {city} {n} days ago. Am I still inside the withdrawal period?"
        ref = (f"No. The withdrawal period of 14 days has ended. If the {item} is defective, the legal guarantee "
               "covers repair or replacement for 2 years from delivery [refund-policy-eu-v3] [warranty-eu].")
        out.append(fact(q, ref, ["refund-policy-eu-v3", "warranty-eu"], ["14 days", "2 years"], "EU", product,
                         "return_refund", "returns"))
    for n in (34, 52):
        city, state = rng.choice(US_PLACES)
        product = rng.choice(["router", "thermostat"])
        item = rng.choice(HARDWARE[product])
        q = f"Day {n} since delivery of my {item} to {state}. Can I still send it back for a refund?"
        ref = ("No. The return window of 30 days has passed. If the device is defective, the limited warranty (1 year "
               "from the purchase date) covers repair or replacement [refund-policy-us-v3] [warranty-us-v2].")
        out.append(fact(q, ref, ["refund-policy-us-v3", "warranty-us-v2"], ["30 days", "1 year"], "US", product,
                         "return_refund", "returns"))
    out.append(fact(
        "How do I tell Havrel that I'm withdrawing from my online order? I live in Bologna.",
        "Use the withdrawal form under My orders at havrel.example, or email returns@havrel.example with your order "
        "number. After that you have another 14 days to send the goods back [refund-policy-eu-v3].",
        ["refund-policy-eu-v3"], ["returns@havrel.example"], "EU", "all", "return_refund", "returns"))
    out.append(fact(
        "What are the steps to send back a Havrel device from Iowa?",
        "Start the return under My orders at havrel.example; we email you a free prepaid label, and you ship the item "
        "within 14 days of starting the return [refund-policy-us-v3].",
        ["refund-policy-us-v3"], ["14 days"], "US", "all", "return_refund", "returns"))
    out.append(fact(
        "I chose express delivery for my Ember T2 and then withdrew. Is the express surcharge refunded? I'm in Liège.",
        "No. We refund the purchase price and the original standard shipping cost, but express shipping surcharges are "
        "not refunded [refund-policy-eu-v3].",
        ["refund-policy-eu-v3"], ["standard shipping"], "EU", "thermostat", "return_refund", "returns"))
    out.append(fact(
        "Do I get the USD 99 back for the professional installation if I return my Ember T2 in Tennessee?",
        "No. The professional installation service (USD 99) is not refundable once it has been performed; the "
        "thermostat itself is refunded [refund-policy-us-v3].",
        ["refund-policy-us-v3"], ["USD 99"], "US", "thermostat", "return_refund", "returns"))
    out.append(fact(
        "Do I have to ship my return the same day I start it online? I'm in Nebraska.",
        "No. After you start the return and receive the free label, you have 14 days to ship the item "
        "[refund-policy-us-v3].",
        ["refund-policy-us-v3"], ["14 days"], "US", "all", "return_refund", "returns"))
    return out


def prices(rng: random.Random) -> list[Example]:
    eu_city, eu_country = rng.choice(EU_PLACES)
    us_city, us_state = rng.choice(US_PLACES)
    rows = [
        (f"Adding one room sensor to my heating setup in {eu_country}: what will that cost?",
         "One Ember room sensor costs EUR 39, VAT included [pricing-eu-2026].", "EUR 39", "EU", "thermostat", "pricing-eu-2026"),
        (f"My mesh needs one more node for the garage in {us_state}. Price?",
         "An add-on Arc R6 satellite costs USD 129 plus sales tax [pricing-us-2026].", "USD 129", "US", "router", "pricing-us-2026"),
        (f"Vault Basic for a whole year in {eu_country}: what does it cost?",
         "Vault Basic costs EUR 29 per year, VAT included [pricing-eu-2026].", "EUR 29", "EU", "storage", "pricing-eu-2026"),
        ("Family storage plan for EU households, billed monthly: how much?",
         "Vault Family costs EUR 16.99 per month for 6 TB shared by up to 6 people [pricing-eu-2026].", "EUR 16.99", "EU", "storage", "pricing-eu-2026"),
        (f"Care+ for our home in {us_city}: what's the fee?",
         "Care+ costs USD 5.99 per month per household in the US [pricing-us-2026] [support-plans].", "USD 5.99", "US", "all", "pricing-us-2026"),
        ("Are the prices in the EU shop with or without VAT?",
         "EU prices include VAT [pricing-eu-2026].", "include VAT", "EU", "all", "pricing-eu-2026"),
        (f"Is sales tax included in the price shown for {us_state}?",
         "No. US prices do not include sales tax; it is added at checkout based on the delivery address [pricing-us-2026].",
         "sales tax", "US", "all", "pricing-us-2026"),
        (f"One extra room sensor for the bedroom, delivered to {us_state}: price?",
         "The Ember room sensor costs USD 39 plus sales tax [pricing-us-2026].", "USD 39", "US", "thermostat", "pricing-us-2026"),
        ("I'd pay month by month for 2 TB of Vault in Texas. How much is that?",
         "Vault Plus (2 TB) costs USD 9.99 per month, plus sales tax [pricing-us-2026].", "USD 9.99", "US", "storage", "pricing-us-2026"),
    ]
    out = []
    for q, ref, must, juris, product, src in rows:
        sources = [src] + (["support-plans"] if "support-plans" in ref else [])
        out.append(fact(q, ref, sources, [must], juris, product, "billing", "pricing"))
    return out


def warranty(rng: random.Random) -> list[Example]:
    out = []
    city, country = rng.choice(EU_PLACES)
    out.append(fact(
        f"My Ember T2 from {country} is defective. Can I insist on a new one instead of a repair?",
        "Yes. Under the EU legal guarantee you choose repair or replacement, unless your choice is impossible or "
        "disproportionate; if neither works in reasonable time you can ask for a price reduction or a refund [warranty-eu].",
        ["warranty-eu"], ["replacement"], "EU", "thermostat", "warranty_claim", "warranty"))
    out.append(fact(
        f"I knocked a glass of water over my router in {city} and now it's dead. Is that a guarantee case?",
        "No. Liquid damage is not covered by the legal guarantee [warranty-eu].",
        ["warranty-eu"], ["liquid damage"], "EU", "router", "warranty_claim", "warranty"))
    out.append(fact(
        "I flashed third-party firmware onto my Arc R6 in Dallas. Is the warranty still valid?",
        "No. Devices running modified or third-party firmware are not covered by the limited warranty [warranty-us-v2].",
        ["warranty-us-v2"], ["third-party firmware"], "US", "router", "warranty_claim", "warranty"))
    out.append(fact(
        "Once a defect is confirmed on my EU guarantee claim, how soon does the replacement ship?",
        "A replacement ships within 5 business days once the defect is confirmed, free of charge [warranty-eu].",
        ["warranty-eu"], ["5 business days"], "EU", "all", "warranty_claim", "warranty"))
    out.append(fact(
        "I got an advance replacement with Care+. What if I forget to mail back the broken thermostat?",
        "Return the defective device within 15 days of receiving the replacement; otherwise you are charged the full "
        "price [warranty-us-v2].",
        ["warranty-us-v2"], ["15 days"], "US", "thermostat", "warranty_claim", "warranty"))
    city, state = rng.choice(US_PLACES)
    out.append(fact(
        f"My Ember T2 bought in {state} stopped working after 15 months. Is it still under warranty?",
        "Not under the standard warranty, which lasts 1 year from the purchase date. If you bought Havrel Protect, it is "
        "covered for 3 years in total [warranty-us-v2].",
        ["warranty-us-v2"], ["1 year", "3 years"], "US", "thermostat", "warranty_claim", "warranty"))
    out.append(fact(
        f"I added Havrel Protect when I bought my Arc R6 in {city}. It failed at 20 months. Covered?",
        "Yes. Havrel Protect extends the warranty to 3 years in total, so a failure at 20 months is covered "
        "[warranty-us-v2].",
        ["warranty-us-v2"], ["3 years"], "US", "router", "warranty_claim", "warranty"))
    out.append(fact(
        "I run a small café in Vermont and use an Arc R6 for the customer Wi-Fi. Is it covered if it breaks?",
        "No. Devices used commercially are not covered by the US limited warranty [warranty-us-v2].",
        ["warranty-us-v2"], ["commercially"], "US", "router", "warranty_claim", "warranty"))
    out.append(fact(
        "My thermostat purchase in Maryland was 70 days ago. Is the extended protection still on offer for it?",
        "No. Havrel Protect must be bought within 60 days of the device purchase [warranty-us-v2].",
        ["warranty-us-v2"], ["60 days"], "US", "thermostat", "billing", "warranty"))
    out.append(fact(
        "Where do I find the serial number of my Arc R6 for a guarantee claim?",
        "The serial number is printed on the label under the device and shown in the Havrel app [warranty-eu].",
        ["warranty-eu"], ["label under the device"], "EU", "router", "warranty_claim", "warranty"))
    return out


def privacy(rng: random.Random) -> list[Example]:
    city, country = rng.choice(EU_PLACES)
    return [
        fact(f"My address in your records is wrong. Can I make you correct it under the GDPR? I'm in {country}.",
              "Yes. You have the right to correction (rectification); use the privacy portal at havrel.example/privacy "
              "or write to privacy@havrel.example, and we answer within one month [privacy-gdpr-eu].",
              ["privacy-gdpr-eu"], ["one month"], "EU", "all", "privacy_request", "privacy"),
        fact("How do I reach Havrel's data protection officer?",
              "Write to dpo@havrel.example. You can also complain to your national data protection authority [privacy-gdpr-eu].",
              ["privacy-gdpr-eu"], ["dpo@havrel.example"], "EU", "all", "privacy_request", "privacy"),
        fact("Does it cost anything to ask Havrel for my data in the EU?",
              "No. Requests are free of charge; only manifestly unfounded or excessive requests may be refused or charged [privacy-gdpr-eu].",
              ["privacy-gdpr-eu"], ["free of charge"], "EU", "all", "privacy_request", "privacy"),
        fact("How many times a year can I ask Havrel what data it has on me? I'm in Oregon.",
              "You can make a request to know up to twice in 12 months, free of charge [privacy-ccpa-us].",
              ["privacy-ccpa-us"], ["twice in 12 months"], "US", "all", "privacy_request", "privacy"),
        fact("My browser sends the Global Privacy Control signal. Does Havrel respect it?",
              "Yes. Havrel honors the Global Privacy Control signal, even though it does not sell personal information [privacy-ccpa-us].",
              ["privacy-ccpa-us"], ["Global Privacy Control"], "US", "all", "privacy_request", "privacy"),
        fact("Is there a phone number for privacy requests in the US?",
              "Yes, the toll-free privacy line 1-800-555-0163; you can also use havrel.example/privacy [privacy-ccpa-us].",
              ["privacy-ccpa-us"], ["1-800-555-0163"], "US", "all", "privacy_request", "privacy"),
        fact("What do you check before sending me specific pieces of my personal information? I'm in Colorado.",
              "For a copy of specific pieces of information we match three pieces of information you give us; for a request "
              "to know or delete, two [privacy-ccpa-us].",
              ["privacy-ccpa-us"], ["three"], "US", "all", "privacy_request", "privacy"),
    ]


def shipping(rng: random.Random) -> list[Example]:
    out = []
    for country, ok in (("Spain", False), ("Luxembourg", True), ("Austria", False)):
        q = f"Can I get next-day express delivery to {country}?"
        if ok:
            ref = (f"Yes. Express is available in {country}: next business day delivery when you order before 14:00 CET, "
                   "for EUR 12.90 [shipping-eu].")
            must = ["EUR 12.90"]
        else:
            ref = (f"No. Express is only available in the Netherlands, Belgium, Luxembourg, Germany and mainland France; "
                   f"to {country} we ship standard, in 2 to 4 business days [shipping-eu].")
            must = ["2 to 4 business days"]
        out.append(fact(q, ref, ["shipping-eu"], must, "EU", "all", "shipping", "shipping"))
    out += [
        fact("Can you deliver to my holiday flat in Switzerland from the EU shop?",
              "No. The EU shop delivers to the 27 EU member states only [shipping-eu].",
              ["shipping-eu"], ["27 EU member states"], "EU", "all", "shipping", "shipping"),
        fact("When do I get a tracking link for my EU order?",
              "You receive a tracking link by email within 24 hours of placing the order [shipping-eu].",
              ["shipping-eu"], ["24 hours"], "EU", "all", "shipping", "shipping"),
        fact("My standard parcel to Tampere still hasn't arrived after 11 business days. What now?",
              "Contact support: we open an investigation with the carrier, which takes up to 5 business days, and if the "
              "parcel is not found we send a replacement or refund you [shipping-eu].",
              ["shipping-eu"], ["5 business days"], "EU", "all", "shipping", "shipping"),
        fact("Is shipping free if I only order one Ember room sensor (USD 39) to Iowa?",
              "No. Standard shipping in the US is free on orders from USD 35, so a USD 39 room sensor ships free [shipping-us] [pricing-us-2026].",
              ["shipping-us", "pricing-us-2026"], ["USD 35"], "US", "thermostat", "shipping", "shipping"),
        fact("Do you ship to PO boxes in the US?",
              "Yes. PO boxes and APO/FPO addresses are accepted for standard shipping [shipping-us].",
              ["shipping-us"], ["standard shipping"], "US", "all", "shipping", "shipping"),
        fact("How many business days does standard shipping take to Kentucky?",
              "Standard shipping takes 3 to 5 business days [shipping-us].",
              ["shipping-us"], ["3 to 5 business days"], "US", "all", "shipping", "shipping"),
        fact("Until what time can I order and still get expedited shipping in California?",
              "Order before 1 pm PT for expedited delivery in 2 business days (USD 14.99) [shipping-us].",
              ["shipping-us"], ["1 pm PT"], "US", "all", "shipping", "shipping"),
        fact("Can I change the delivery address of an order I placed 40 minutes ago?",
              "Yes, if the order status is still Received: addresses can be changed within 60 minutes of placing the order [order-changes].",
              ["order-changes"], ["60 minutes"], None, "all", "shipping", "orders"),
        fact("My order status says Preparing. Can I still cancel?",
              "No. Once the status is Preparing the order can no longer be changed or cancelled; use the return process "
              "after it arrives [order-changes].",
              ["order-changes"], ["Preparing"], None, "all", "cancellation", "orders"),
        fact("I paid by SEPA bank transfer. When will my order ship?",
              "Orders paid by bank transfer ship when the payment arrives [order-changes].",
              ["order-changes"], ["payment arrives"], "EU", "all", "shipping", "orders"),
    ]
    return out


def subscriptions(rng: random.Random) -> list[Example]:
    out = []
    for plan, price, elapsed, unused in (("Vault Basic", 29, "2 months and 5 days", 9),
                                         ("Vault Plus", 99, "1 month and 2 days", 10),
                                         ("Vault Family", 169, "9 months and 20 days", 2)):
        city, country = rng.choice(EU_PLACES)
        amount = f"{price * unused / 12:.2f}"
        out.append(fact(
            f"Cancelling my yearly {plan} ({country}) after {elapsed}. It cost EUR {price}. What refund do I get?",
            f"You get a pro-rata refund of the {unused} unused full months: EUR {price} x {unused}/12 = EUR {amount}, to your "
            "original payment method within 10 days [subscription-cancellation-eu].",
            ["subscription-cancellation-eu"], [f"EUR {amount}"], "EU", "storage", "cancellation",
            "subscription-cancellation", calculation=f"{price} x {unused}/12 = {amount}"))
    out += [
        fact("My annual Vault Plus renewed 5 days ago and I'm in Spain. Is that covered by the 14-day withdrawal right?",
              "No. The 14-day full refund applies to the first purchase, not to renewals. You can still cancel and get a "
              "pro-rata refund of the unused full months: 11 months, EUR 99 x 11/12 = EUR 90.75 [subscription-cancellation-eu].",
              ["subscription-cancellation-eu"], ["EUR 90.75"], "EU", "storage", "cancellation", "subscription-cancellation",
              calculation="99 x 11/12 = 90.75"),
        fact("Will you warn me before my yearly Vault plan renews?",
              "Yes. We email you 30 days before an annual plan renews [subscription-cancellation-eu] [subscription-cancellation-us-v2].",
              ["subscription-cancellation-eu", "subscription-cancellation-us-v2"], ["30 days"], None, "storage",
              "cancellation", "subscription-cancellation"),
        fact("Where in the app do I cancel Vault? I'm in Arizona.",
              "Cancel in one step in the Vault app or at havrel.example under Settings > Subscription > Cancel subscription; "
              "you can also call support [subscription-cancellation-us-v2].",
              ["subscription-cancellation-us-v2"], ["Settings > Subscription"], "US", "storage", "cancellation",
              "subscription-cancellation"),
        fact("I pay monthly for Vault Plus in Idaho and I'm cancelling on the 12th. Do I get the rest of the month refunded?",
              "No. Partial months are not refunded; the plan stays active until the end of the month you paid for "
              "[subscription-cancellation-us-v2].",
              ["subscription-cancellation-us-v2"], ["not refunded"], "US", "storage", "cancellation", "subscription-cancellation"),
    ]
    return out


def support_and_accounts(rng: random.Random) -> list[Example]:
    return [
        fact("What number do I call for Havrel support in the EU, and when on weekdays?",
              "Call +31 20 555 0148, Monday to Friday 08:00 to 20:00 CET [support-hours-eu].",
              ["support-hours-eu"], ["+31 20 555 0148"], "EU", "all", "general", "support-hours"),
        fact("Is your EU phone line open on New Year's Day?",
              "No. The line is closed on 1 January, on 25 December and on Sundays [support-hours-eu].",
              ["support-hours-eu"], ["1 January"], "EU", "all", "general", "support-hours"),
        fact("Until what time can I call on a Tuesday in the US?",
              "On weekdays the US line is open from 7 am to 9 pm ET [support-hours-us].",
              ["support-hours-us"], ["9 pm ET"], "US", "all", "general", "support-hours"),
        fact("Are you open on Thanksgiving?",
              "No. The US phone line is closed on Thanksgiving Day and on December 25 [support-hours-us].",
              ["support-hours-us"], ["Thanksgiving"], "US", "all", "general", "support-hours"),
        fact("Which languages does the EU phone team speak?",
              "English, German, French, Spanish and Dutch [support-hours-eu].",
              ["support-hours-eu"], ["Dutch"], "EU", "all", "general", "support-hours"),
        fact("What do I get with Care+ besides faster email answers?",
              "24/7 chat, a priority callback within 30 minutes during phone hours, advance replacement of defective "
              "hardware (US), free express shipping of replacements and one remote setup session per month [support-plans].",
              ["support-plans"], ["30 minutes"], None, "all", "general", "support-plans"),
        fact("Can I chat with support at 2 am on Standard support?",
              "No. On Standard support chat follows the phone hours of your region; it is open 24/7 only for Care+ members "
              "[support-plans].",
              ["support-plans"], ["24/7"], None, "all", "general", "support-plans"),
        fact("This is the third time in a year my Arc R6 has to be replaced under warranty. Is there another option?",
              "Yes. When the same device needs a third warranty replacement within 12 months, we offer a full refund of the "
              "purchase price instead [escalation-compensation].",
              ["escalation-compensation"], ["full refund"], None, "router", "warranty_claim", "escalation"),
        fact("My ticket has been open for a week with no solution. Can it go to someone more senior?",
              "Yes. Tickets open for more than 5 business days are escalated to Tier 2 [escalation-compensation].",
              ["escalation-compensation"], ["Tier 2"], None, "all", "general", "escalation"),
        fact("How do I turn on two-step verification for my Havrel account?",
              "Turn it on in the app under Settings > Security; it works with an authenticator app or SMS codes [account-security].",
              ["account-security"], ["Settings > Security"], None, "all", "account_access", "account"),
        fact("I can't read my account email anymore. How can I still prove it's me?",
              "We verify you with an order number, the last 4 digits of the payment card on the account and the serial "
              "number of a registered device; then there is a 48-hour waiting period before the email changes [account-security].",
              ["account-security"], ["48-hour"], None, "all", "account_access", "account"),
        fact("Does goodwill credit from support expire?",
              "Yes. Goodwill credit is account credit, not cash, and it expires 12 months after it is given [escalation-compensation].",
              ["escalation-compensation"], ["12 months"], None, "all", "billing", "escalation"),
    ]


def generate(rng: random.Random) -> list[Example]:
    out: list[Example] = []
    for part in (returns, prices, warranty, privacy, shipping, subscriptions, support_and_accounts):
        out += part(rng)
    return out
