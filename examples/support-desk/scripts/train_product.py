"""Train examples about the products: features, troubleshooting, outdated-document conflicts."""

from __future__ import annotations

import random
from typing import Any

from train_common import ex
from train_facts import fact

Example = dict[str, Any]


def products(rng: random.Random) -> list[Example]:
    return [
        fact("What area does one Arc R6 unit cover?",
              "Each Arc R6 unit covers about 150 square metres [faq-router].",
              ["faq-router"], ["150 square metres"], None, "router", "technical_support", "product"),
        fact("Which Wi-Fi standard does the Arc R6 use?",
              "The Arc R6 is a Wi-Fi 6 (AX3000) mesh router [faq-router].",
              ["faq-router"], ["Wi-Fi 6"], None, "router", "technical_support", "product"),
        fact("Can I add access points from another brand to my Arc R6 mesh?",
              "Not as mesh satellites: only Arc R6 satellites join an Arc R6 mesh. Other access points can be connected by "
              "cable as ordinary access points [faq-router].",
              ["faq-router"], ["by cable"], None, "router", "technical_support", "product"),
        fact("Can visitors use my Wi-Fi without seeing my own devices?",
              "Yes. Turn on the guest network in the Havrel app; it is a separate Wi-Fi network that cannot see your own "
              "devices [faq-router].",
              ["faq-router"], ["guest network"], None, "router", "technical_support", "product"),
        fact("When does the Arc R6 install firmware updates?",
              "Updates install automatically at 03:00 local time [faq-router].",
              ["faq-router"], ["03:00"], None, "router", "technical_support", "product"),
        fact("Can I put a password on a shared Vault link?",
              "Yes, on Vault Plus and Vault Family you can protect a shared link with a password and an expiry date [faq-storage].",
              ["faq-storage"], ["password"], None, "storage", "technical_support", "product"),
        fact("Which devices have a Vault app?",
              "Vault has apps for Windows, macOS, Linux, iOS and Android [faq-storage].",
              ["faq-storage"], ["Linux"], None, "storage", "technical_support", "product"),
        fact("How often does the Havrel app send energy reports for the thermostat?",
              "The Havrel app gives you monthly energy reports [faq-thermostat].",
              ["faq-thermostat"], ["monthly"], None, "thermostat", "technical_support", "product"),
        fact("We have district heating without a boiler in our Copenhagen flat. Does the Ember T2 fit?",
              "No. The EU Ember T2 is not compatible with district heating systems that have no boiler connection "
              "[thermostat-compatibility-eu].",
              ["thermostat-compatibility-eu"], ["district heating"], "EU", "thermostat", "technical_support", "installation"),
        fact("Thick wires joined with wire nuts behind my old thermostat in Maine. Can I fit an Ember T2?",
              "Probably not: thick wires with wire nuts usually mean a line-voltage system, which the Ember T2 does not "
              "support, so do not install it [thermostat-compatibility-us].",
              ["thermostat-compatibility-us"], ["line-voltage"], "US", "thermostat", "technical_support", "installation"),
        fact("Is Havrel's thermostat installation service available in Honolulu?",
              "No. Professional installation in the US is available in the 48 contiguous states only [thermostat-compatibility-us].",
              ["thermostat-compatibility-us"], ["48 contiguous states"], "US", "thermostat", "billing", "installation"),
        fact("Can I wire the Heat Link to my boiler myself?",
              "The Heat Link is wired to a mains-powered (230 V) boiler, so let a qualified installer do it if you are not "
              "sure; Havrel's installation costs EUR 89 [thermostat-compatibility-eu].",
              ["thermostat-compatibility-eu"], ["qualified installer"], "EU", "thermostat", "technical_support", "installation"),
        fact("What is Havrel's availability commitment for Vault?",
              "Vault is available at least 99.9% of each calendar month; announced scheduled maintenance does not count "
              "[vault-uptime-credits].",
              ["vault-uptime-credits"], ["99.9%"], None, "storage", "general", "sla"),
        fact("Our team couldn't reach Vault for days in February; the status page shows 94.2% for the month. Is anything owed?",
              "Below 95.0% you can claim a 50% credit on the monthly fee of your plan [vault-uptime-credits].",
              ["vault-uptime-credits"], ["50%"], None, "storage", "billing", "sla"),
        fact("Does the Sunday night Vault maintenance count as downtime for credits?",
              "No. Scheduled maintenance announced at least 48 hours in advance, usually Sundays 02:00 to 04:00 UTC, does "
              "not count as downtime [vault-uptime-credits].",
              ["vault-uptime-credits"], ["48 hours"], None, "storage", "general", "sla"),
        fact("Can Vault service credits be paid out to my bank account?",
              "No. Credits are applied to your next invoice and are not paid out in cash [vault-uptime-credits].",
              ["vault-uptime-credits"], ["next invoice"], None, "storage", "billing", "sla"),
    ]


def _trouble(q: str, ref: str, sources: list[str], must: list[str], product: str, juris: str | None = None) -> Example:
    return ex("troubleshooting", q, ref, sources, must, juris=juris, product=product, intent="technical_support")


def troubleshooting(rng: random.Random) -> list[Example]:
    r, s, t = ["troubleshoot-router"], ["troubleshoot-storage"], ["troubleshoot-thermostat"]
    return [
        _trouble("I just plugged in my Arc R6 and the light is pulsing white. Is it broken?",
                 "No. Pulsing white means the router is starting up, which can take up to 3 minutes [troubleshoot-router].",
                 r, ["3 minutes"], "router"),
        _trouble("Why is my Arc R6 glowing blue?",
                 "Blue means the router is ready to pair a mesh satellite [troubleshoot-router].", r, ["satellite"], "router"),
        _trouble("How do I just restart the Arc R6 without losing my settings?",
                 "Unplug the power for 10 seconds, or press the reset button briefly (under 5 seconds) [troubleshoot-router].",
                 r, ["10 seconds"], "router"),
        _trouble("Wi-Fi is slow in my kitchen. Where should the router be?",
                 "Place the router in the open, off the floor and away from microwaves, and keep satellites within two rooms "
                 "of each other [troubleshoot-router].", r, ["microwaves"], "router"),
        _trouble("The app reports PPPoE authentication failed. Where do I re-enter the login?",
                 "That is error E204: re-enter the username and password from your internet provider under Settings > "
                 "Internet [troubleshoot-router].", r, ["Settings > Internet"], "router"),
        _trouble("How do I find out which firmware my Arc R6 runs?",
                 "In the Havrel app under Devices > Arc R6 > About; the current firmware is 4.2.1 [troubleshoot-router].",
                 r, ["4.2.1"], "router"),
        _trouble("I want to keep my provider's router and use the Arc R6 only for Wi-Fi. How?",
                 "Put the Arc R6 in access point mode under Settings > Mode [troubleshoot-router].", r, ["access point mode"], "router"),
        _trouble("If I sign out of the Vault desktop app, are my files deleted?",
                 "No. Your files are not deleted when you sign out [troubleshoot-storage].", s, ["not deleted"], "storage"),
        _trouble("Can I get last month's version of a document back on Vault Plus?",
                 "Yes. Vault Plus keeps earlier versions of a file for 180 days [troubleshoot-storage].", s, ["180 days"], "storage"),
        _trouble("How long does Vault Basic keep older versions of my files?",
                 "Vault Basic keeps earlier versions for 30 days [troubleshoot-storage].", s, ["30 days"], "storage"),
        _trouble("What's the minimum desktop app version Vault supports?",
                 "The minimum supported desktop version is 3.8 [troubleshoot-storage].", s, ["3.8"], "storage"),
        _trouble("My new Ember T2 in Sacramento says C0. What does that mean?",
                 "C0 means not enough power: the thermostat needs a C-wire (24 V common); if there is none, connect the "
                 "Havrel power adapter from the box [troubleshoot-thermostat].", t, ["C-wire"], "thermostat", "US"),
        _trouble("My heating schedule runs an hour off since we changed the clocks.",
                 "Check the time zone under Settings > Time; schedules are stored on the thermostat [troubleshoot-thermostat].",
                 t, ["Settings > Time"], "thermostat"),
        _trouble("How do I restart the Ember T2 without erasing anything?",
                 "Press and hold the dial for 10 seconds to restart it; only holding it for 20 seconds resets it "
                 "[troubleshoot-thermostat].", t, ["10 seconds"], "thermostat"),
        _trouble("Can I mount the Ember T2 right above the radiator in the hallway?",
                 "No. Do not mount the thermostat above a radiator or in direct sunlight, or it will measure the wrong "
                 "temperature [troubleshoot-thermostat].", t, ["radiator"], "thermostat"),
    ]


def _conflict(q: str, ref: str, sources: list[str], must: list[str], juris: str | None, product: str,
              intent: str, outdated: list[str]) -> Example:
    return ex("conflicting-policy", q, ref, sources + ["precedence"], must, juris=juris, product=product,
              intent=intent, distractor_sources=outdated)


def conflicts(rng: random.Random) -> list[Example]:
    return [
        _conflict("I paid EUR 159 for my Arc R6 in November 2025 and now it's listed at EUR 149. Was I overcharged?",
                  "No. An order is charged at the price list in force on the order date; in 2025 the Arc R6 cost EUR 159, "
                  "and EUR 149 applies to orders from 2026-01-01 [pricing-eu-2025] [pricing-eu-2026] [precedence].",
                  ["pricing-eu-2025", "pricing-eu-2026"], ["order date"], "EU", "router", "billing", []),
        _conflict("I ordered an Ember T2 on 2025-12-20 for EUR 219 and today it's EUR 199. Do I get the difference back?",
                  "No. Orders are charged at the price list in force on the order date, and in December 2025 the Ember T2 "
                  "cost EUR 219 [pricing-eu-2025] [precedence].",
                  ["pricing-eu-2025", "pricing-eu-2026"], ["order date"], "EU", "thermostat", "billing", []),
        _conflict("Is the mesh 3-pack EUR 399 or EUR 379 if I order today in Austria?",
                  "EUR 379 under the 2026 price list; EUR 399 was the 2025 price [pricing-eu-2026].",
                  ["pricing-eu-2026"], ["EUR 379"], "EU", "router", "billing", ["pricing-eu-2025"]),
        _conflict("A page lists Vault Family at EUR 14.99 a month. What do I actually pay from Portugal?",
                  "EUR 16.99 per month under the 2026 price list; EUR 14.99 was the 2025 price [pricing-eu-2026].",
                  ["pricing-eu-2026"], ["EUR 16.99"], "EU", "storage", "billing", ["pricing-eu-2025"]),
        _conflict("Yearly Vault Plus: I've seen EUR 89 and EUR 99. Which is current for Slovenia?",
                  "EUR 99 per year under the 2026 price list; EUR 89 was the 2025 price [pricing-eu-2026].",
                  ["pricing-eu-2026"], ["EUR 99"], "EU", "storage", "billing", ["pricing-eu-2025"]),
        _conflict("An old help page says annual Vault plans are refunded within 14 days. My renewal in Utah was 35 days ago. "
                  "Refund?",
                  "No. The current US policy (since 2026-02-01) gives a full refund within 30 days of a purchase or renewal; "
                  "at 35 days there is no refund, but the plan stays active until the end of the term "
                  "[subscription-cancellation-us-v2].",
                  ["subscription-cancellation-us-v2"], ["30 days"], "US", "storage", "cancellation",
                  ["subscription-cancellation-us-v1"]),
        _conflict("I live in Germany but had the router delivered to my sister in Ohio. Which return rules apply?",
                  "The jurisdiction follows the delivery address, so the US policy applies: 30 days from delivery, with no "
                  "restocking fee [precedence] [refund-policy-us-v3].",
                  ["refund-policy-us-v3"], ["30 days"], "US", "router", "return_refund", ["refund-policy-eu-v3"]),
        _conflict("I moved to Boston but my Vault subscription is still billed to my French account. Which cancellation "
                  "rules do I get?",
                  "For Havrel Vault the billing country decides, so the EU cancellation policy applies: a pro-rata refund of "
                  "unused full months on annual plans [precedence] [subscription-cancellation-eu].",
                  ["subscription-cancellation-eu"], ["billing country"], "EU", "storage", "cancellation",
                  ["subscription-cancellation-us-v2"]),
        _conflict("The general returns page says refunds take 10 business days. I withdrew from my order in Latvia; "
                  "is that my timeline?",
                  "No. The EU policy applies to you: we refund within 14 days of receiving your withdrawal notice "
                  "[refund-policy-eu-v3] [precedence].",
                  ["refund-policy-eu-v3"], ["14 days"], "EU", "all", "return_refund", ["returns-overview"]),
    ]


def generate(rng: random.Random) -> list[Example]:
    return products(rng) + troubleshooting(rng) + conflicts(rng)
