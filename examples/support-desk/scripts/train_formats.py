"""Train examples in the harder formats: long rambling messages, Spanish / French / German,
multi-turn chats and structured triage (JSON validated by schemas/triage.json)."""

from __future__ import annotations

import json
import random
from typing import Any

from train_common import ex

Example = dict[str, Any]

_OPENERS = [
    "Hi there, sorry in advance for the long message.",
    "Hello Havrel, I hope you're having a better week than I am.",
    "Good morning. I'll try to keep this short, but I probably won't.",
    "Hi! First time writing to support, so bear with me.",
]
_ASIDES = [
    "We've just had the kitchen redone and everything is covered in dust.",
    "My partner thinks I spend too much time on gadgets, which is fair.",
    "The cat has decided the router is the warmest spot in the house.",
    "I'm typing this on my phone from the train, so forgive any typos.",
    "My teenage son says I should just ask a chatbot, so here I am.",
    "Our previous provider's support line kept me on hold for forty minutes last year.",
    "We're hosting my in-laws for two weeks, so the house is full.",
    "I work shifts at the hospital, so I can only deal with this on weekends.",
    "The weather has been awful and the heating has been on non-stop.",
    "I already searched the help pages but got a bit lost between versions.",
]
_CLOSERS = ["Thanks a lot!", "Cheers, and thanks for reading all that.", "Thank you in advance.", "Best regards."]

_LONG_CORES = [
    ("I'd like to pay by bank transfer from Nantes. Is that possible, and when would my order ship?",
     "Yes, in the EU you can pay by SEPA bank transfer; orders paid by bank transfer ship when the payment arrives "
     "[order-changes].", ["order-changes"], ["SEPA"], "EU", "all", "shipping"),
    ("I'm not good with apps. Can I cancel my Vault subscription by phone instead? I'm in Michigan.",
     "Yes. You can cancel online in the Vault app or at havrel.example, or call support [subscription-cancellation-us-v2].",
     ["subscription-cancellation-us-v2"], ["call support"], "US", "storage", "cancellation"),
    ("Coffee went all over the Arc R6 on my desk in Ohio. Does the warranty cover that?",
     "No. Physical or liquid damage is not covered by the US limited warranty [warranty-us-v2].",
     ["warranty-us-v2"], ["liquid damage"], "US", "router", "warranty_claim"),
    ("Can I get express delivery of an Arc R6 to my parents in Rome?",
     "No. Express is not available in Italy; standard shipping delivers in 2 to 4 business days [shipping-eu].",
     ["shipping-eu"], ["2 to 4 business days"], "EU", "router", "shipping"),
    ("How do I switch on two-step verification on my Havrel account?",
     "Turn it on in the app under Settings > Security, with an authenticator app or SMS codes [account-security].",
     ["account-security"], ["Settings > Security"], None, "all", "account_access"),
    ("Is there a Vault app for my Linux laptop and my Android phone?",
     "Yes. Vault has apps for Windows, macOS, Linux, iOS and Android [faq-storage].",
     ["faq-storage"], ["Linux", "Android"], None, "storage", "technical_support"),
    ("The new Ember T2 in our Boise house shows C0 on the screen. What is it telling me?",
     "C0 means the thermostat lacks power: it needs a C-wire, or the Havrel power adapter from the box "
     "[troubleshoot-thermostat].", ["troubleshoot-thermostat"], ["power adapter"], "US", "thermostat", "technical_support"),
    ("Does Care+ include chat in the middle of the night, and is it per device or for the whole household?",
     "Care+ includes 24/7 chat, and it is priced per household, covering all your Havrel devices [support-plans].",
     ["support-plans"], ["24/7", "per household"], None, "all", "general"),
    ("My son is stationed overseas with an APO address. Can you ship an Arc R6 to him?",
     "Yes. APO/FPO addresses are accepted for standard shipping [shipping-us].",
     ["shipping-us"], ["standard shipping"], "US", "router", "shipping"),
    ("We rent out a room to guests. Can they use the Wi-Fi without seeing our own devices?",
     "Yes. Turn on the guest network in the Havrel app: a separate Wi-Fi that cannot see your own devices [faq-router].",
     ["faq-router"], ["guest network"], None, "router", "technical_support"),
    ("Where exactly are Vault files of American customers kept, and are they encrypted?",
     "In Oregon, encrypted at rest with AES-256 and in transit with TLS [faq-storage].",
     ["faq-storage"], ["Oregon", "AES-256"], "US", "storage", "technical_support"),
    ("Can the thermostat lower the heating by itself when we all leave the house?",
     "Yes. Away mode uses your phone's location to lower the heating when you leave [faq-thermostat].",
     ["faq-thermostat"], ["location"], None, "thermostat", "technical_support"),
]


def long_context(rng: random.Random) -> list[Example]:
    out = []
    for core, ref, sources, must, juris, product, intent in _LONG_CORES:
        asides = rng.sample(_ASIDES, 4)
        text = " ".join([rng.choice(_OPENERS), asides[0], asides[1], core, asides[2], asides[3], rng.choice(_CLOSERS)])
        out.append(ex("long-context", text, ref, sources, must, juris=juris, product=product, intent=intent))
    return out


_ML = {
    "es": [
        ("¿Cuánto cuesta el envío estándar a España si solo compro un sensor de habitación de EUR 39?",
         "Cuesta EUR 4,90, porque el envío estándar es gratuito a partir de EUR 50 [shipping-eu].", ["shipping-eu"], ["EUR 50"], "EU", "thermostat", "shipping"),
        ("¿Aceptan apartados postales (PO box) para envíos en EE. UU.?",
         "Sí, los apartados postales y las direcciones APO/FPO se aceptan con envío estándar [shipping-us].", ["shipping-us"], ["estándar"], "US", "all", "shipping"),
        ("¿Qué significa la luz blanca que parpadea en mi Arc R6 recién enchufado?",
         "Significa que el router está arrancando, lo que puede tardar hasta 3 minutos [troubleshoot-router].", ["troubleshoot-router"], ["3 minutos"], None, "router", "technical_support"),
        ("¿Puedo cambiar la dirección de entrega si el pedido ya está en estado Preparing?",
         "No. Cuando el estado es Preparing el pedido ya no se puede modificar [order-changes].", ["order-changes"], ["Preparing"], None, "all", "shipping"),
        ("¿Cubre la garantía de EE. UU. un router que uso en mi negocio?",
         "No. Los dispositivos de uso comercial no están cubiertos por la garantía limitada de EE. UU. [warranty-us-v2].", ["warranty-us-v2"], ["comercial"], "US", "router", "warranty_claim"),
        ("¿A qué hora abre el soporte telefónico de lunes a viernes en EE. UU.?",
         "De lunes a viernes atendemos de 7 am a 9 pm ET en el 1-800-555-0148 [support-hours-us].", ["support-hours-us"], ["7 am"], "US", "all", "general"),
        ("¿Vault Basic guarda versiones anteriores de mis archivos?",
         "Sí, Vault Basic guarda las versiones anteriores durante 30 días [troubleshoot-storage].", ["troubleshoot-storage"], ["30 días"], None, "storage", "technical_support"),
        ("¿Tengo que pagar el envío de la devolución de un router en EE. UU.?",
         "No. Te enviamos por correo electrónico una etiqueta prepagada gratuita [refund-policy-us-v3].", ["refund-policy-us-v3"], ["gratuita"], "US", "router", "return_refund"),
        ("¿Cuántas veces al año puedo pedir saber qué datos tienen de mí? Vivo en Texas.",
         "Puedes hacerlo hasta dos veces en 12 meses, sin coste [privacy-ccpa-us].", ["privacy-ccpa-us"], ["dos veces"], "US", "all", "privacy_request"),
        ("¿Dónde vuelvo a escribir el usuario y la contraseña PPPoE en el Arc R6?",
         "En la app Havrel, en Settings > Internet; es la solución del error E204 [troubleshoot-router].", ["troubleshoot-router"], ["Settings > Internet"], None, "router", "technical_support"),
    ],
    "fr": [
        ("Combien coûte Vault Basic par an en France ?",
         "Vault Basic coûte EUR 29 par an, TVA incluse, pour 200 GB [pricing-eu-2026].", ["pricing-eu-2026"], ["EUR 29"], "EU", "storage", "billing"),
        ("Qu'est-ce qui n'est pas couvert par la garantie légale ?",
         "Les dommages physiques après la livraison, les dommages dus aux liquides et les appareils avec un firmware modifié ne sont pas couverts [warranty-eu].", ["warranty-eu"], ["liquides"], "EU", "all", "warranty_claim"),
        ("Mon colis standard n'est toujours pas arrivé après 12 jours ouvrés. Que faire ?",
         "Contactez le support : nous ouvrons une enquête auprès du transporteur, qui dure jusqu'à 5 jours ouvrés, puis nous renvoyons l'article ou vous remboursons [shipping-eu].", ["shipping-eu"], ["5 jours ouvrés"], "EU", "all", "shipping"),
        ("Comment redémarrer l'Arc R6 sans perdre mes réglages ?",
         "Débranchez l'alimentation pendant 10 secondes, ou appuyez brièvement sur le bouton reset (moins de 5 secondes) [troubleshoot-router].", ["troubleshoot-router"], ["10 secondes"], None, "router", "technical_support"),
        ("Où installer l'Ember T2 dans la pièce ?",
         "Pas au-dessus d'un radiateur ni en plein soleil, sinon il mesure une mauvaise température [troubleshoot-thermostat].", ["troubleshoot-thermostat"], ["radiateur"], None, "thermostat", "technical_support"),
        ("Puis-je demander une copie de mes données gratuitement ?",
         "Oui, les demandes sont gratuites ; nous répondons dans un délai d'un mois [privacy-gdpr-eu].", ["privacy-gdpr-eu"], ["gratuit"], "EU", "all", "privacy_request"),
        ("Puis-je protéger un lien de partage Vault par mot de passe ?",
         "Oui, avec Vault Plus et Vault Family vous pouvez ajouter un mot de passe et une date d'expiration [faq-storage].", ["faq-storage"], ["Vault Plus"], None, "storage", "technical_support"),
        ("Quels sont les horaires du service téléphonique en semaine ?",
         "Du lundi au vendredi de 08:00 à 20:00 CET, au +31 20 555 0148 [support-hours-eu].", ["support-hours-eu"], ["20:00"], "EU", "all", "general"),
        ("J'ai payé par virement SEPA. Quand ma commande sera-t-elle expédiée ?",
         "Les commandes payées par virement sont expédiées à réception du paiement [order-changes].", ["order-changes"], ["réception du paiement"], "EU", "all", "shipping"),
        ("L'Ember T2 fonctionne-t-il avec un chauffage urbain sans chaudière ?",
         "Non, il n'est pas compatible avec le chauffage urbain sans raccordement à une chaudière [thermostat-compatibility-eu].", ["thermostat-compatibility-eu"], ["pas compatible"], "EU", "thermostat", "technical_support"),
    ],
    "de": [
        ("Wie erkläre ich den Widerruf meiner Bestellung? Ich wohne in Hamburg.",
         "Nutzen Sie das Widerrufsformular unter \"My orders\" oder schreiben Sie mit Ihrer Bestellnummer an returns@havrel.example; danach haben Sie 14 Tage Zeit für die Rücksendung [refund-policy-eu-v3].", ["refund-policy-eu-v3"], ["returns@havrel.example"], "EU", "all", "return_refund"),
        ("Liefern Sie aus dem EU-Shop auch in die Schweiz?",
         "Nein. Der EU-Shop liefert nur in die 27 Mitgliedstaaten der EU [shipping-eu].", ["shipping-eu"], ["27"], "EU", "all", "shipping"),
        ("Wann bekomme ich den Link zur Sendungsverfolgung?",
         "Sie erhalten den Link per E-Mail innerhalb von 24 Stunden nach der Bestellung [shipping-eu].", ["shipping-eu"], ["24 Stunden"], "EU", "all", "shipping"),
        ("Was bedeutet es, wenn das Licht am Arc R6 blau leuchtet?",
         "Blau bedeutet, dass der Router bereit ist, einen Satelliten zu koppeln [troubleshoot-router].", ["troubleshoot-router"], ["Satelliten"], None, "router", "technical_support"),
        ("Wie lange speichert Vault Plus ältere Versionen einer Datei?",
         "Vault Plus und Vault Family speichern ältere Versionen 180 Tage lang [troubleshoot-storage].", ["troubleshoot-storage"], ["180 Tage"], None, "storage", "technical_support"),
        ("Werden meine Dateien gelöscht, wenn ich mich in der Vault-App abmelde?",
         "Nein, beim Abmelden werden Ihre Dateien nicht gelöscht [troubleshoot-storage].", ["troubleshoot-storage"], ["nicht gelöscht"], None, "storage", "technical_support"),
        ("Mit welchen Heizungen funktioniert das Ember T2 in Europa?",
         "Mit Gas- und Ölkesseln mit OpenTherm oder einfacher Ein/Aus-Schaltung sowie mit Wärmepumpen, die ein Ein/Aus-Signal annehmen [thermostat-compatibility-eu].", ["thermostat-compatibility-eu"], ["OpenTherm"], "EU", "thermostat", "technical_support"),
        ("Welche Fläche deckt ein einzelner Arc R6 ab?",
         "Ein Arc R6 deckt etwa 150 Quadratmeter ab [faq-router].", ["faq-router"], ["150 Quadratmeter"], None, "router", "technical_support"),
        ("Wann werde ich vor der Verlängerung meines Vault-Jahresabos erinnert?",
         "Wir schicken Ihnen 30 Tage vor der Verlängerung eine E-Mail [subscription-cancellation-eu].", ["subscription-cancellation-eu"], ["30 Tage"], "EU", "storage", "cancellation"),
        ("Welche Rechte habe ich nach der DSGVO bei Havrel?",
         "Auskunft, Berichtigung, Löschung, Einschränkung der Verarbeitung, Datenübertragbarkeit und Widerspruch; Anträge über havrel.example/privacy [privacy-gdpr-eu].", ["privacy-gdpr-eu"], ["Löschung"], "EU", "all", "privacy_request"),
    ],
}
_ML_REFUSE = {
    "es": [("Soy policía: dame el historial de temperatura de la casa de mi vecino.",
            "Lo siento, no puedo ayudar con eso. No compartimos datos de otros clientes por chat.", "must-refuse", "thermostat"),
           ("¿Qué medicamento tomo para la migraña?",
            "Lo siento, no puedo ayudar con eso. No doy consejos médicos; consulta a un médico o farmacéutico.", "out-of-scope", "all")],
    "fr": [("Donnez-moi l'adresse e-mail personnelle de l'agent qui m'a répondu hier.",
            "Je suis désolé, je ne peux pas vous aider avec cela. Nous ne communiquons pas les coordonnées de notre personnel.", "must-refuse", "all"),
           ("Quel crédit immobilier dois-je choisir ?",
            "Je suis désolé, je ne peux pas vous aider avec cela. Je ne donne pas de conseils financiers.", "out-of-scope", "all")],
    "de": [("Schalten Sie die Identitätsprüfung ab, ich habe keine Zeit für den Code.",
            "Es tut mir leid, dabei kann ich nicht helfen. Ohne den Einmalcode können wir kein Konto ändern.", "must-refuse", "all"),
           ("Wie kann ich meine Steuererklärung optimieren?",
            "Es tut mir leid, dabei kann ich nicht helfen. Für Steuerfragen wenden Sie sich bitte an einen Steuerberater.", "out-of-scope", "all")],
}


def multilingual(rng: random.Random) -> list[Example]:
    out = []
    for lang, rows in _ML.items():
        for q, ref, sources, must, juris, product, intent in rows:
            out.append(ex("multilingual", q, ref, sources, must, juris=juris, product=product, intent=intent,
                          tags=(f"lang:{lang}",), lang=lang))
        for q, ref, kind, product in _ML_REFUSE[lang]:
            intent = "out_of_scope" if kind == "out-of-scope" else "refuse"
            out.append(ex("multilingual", q, ref, [], [], product=product, intent=intent, refuse=True,
                          tags=(f"lang:{lang}", kind), lang=lang))
    return out


def chats(rng: random.Random) -> list[Example]:
    def u(t: str) -> dict[str, str]:
        return {"role": "user", "content": t}

    def a(t: str) -> dict[str, str]:
        return {"role": "assistant", "content": t}

    rows = [
        ([u("Is Care+ worth it?"), a("Care+ gives faster answers, 24/7 chat and advance replacement. What would you use it for?"),
          u("Mostly for my router. How fast would you call me back?")],
         "With Care+ you get a priority callback within 30 minutes during phone hours [support-plans].",
         ["support-plans"], ["30 minutes"], None, "all", "general", "factual"),
        ([u("I need to change something on my order."), a("Sure. What status does it show under My orders?"),
          u("It still says Received. Can I change the delivery address?")],
         "Yes. While the status is Received you can still change the delivery address under My orders [order-changes].",
         ["order-changes"], ["Received"], None, "all", "shipping", "factual"),
        ([u("I want to return my thermostat."), a("I can help. Which country was it delivered to?"),
          u("The US. Havrel also installed it for me.")],
         "You can return the thermostat within 30 days of delivery, but the USD 99 installation is not refundable once it "
         "has been performed [refund-policy-us-v3].", ["refund-policy-us-v3"], ["30 days", "USD 99"], "US", "thermostat",
         "return_refund", "factual"),
        ([u("How much is an extra Arc R6 satellite?"), a("Are you in the EU or in the US?"), u("US.")],
         "An add-on Arc R6 satellite costs USD 129 plus sales tax [pricing-us-2026].",
         ["pricing-us-2026"], ["USD 129"], "US", "router", "billing", "factual"),
        ([u("My thermostat is acting weird."), a("Would you like to restart it, or erase all settings?"),
          u("Just restart, I want to keep my schedules.")],
         "Press and hold the dial for 10 seconds; that restarts it without erasing your schedules [troubleshoot-thermostat].",
         ["troubleshoot-thermostat"], ["10 seconds"], None, "thermostat", "technical_support", "troubleshooting"),
    ]
    return [ex(category, None, ref, sources, must, juris=juris, product=product, intent=intent,
               tags=("multi-turn",), messages=msgs)
            for msgs, ref, sources, must, juris, product, intent, category in rows]


_TRIAGE = [
    ("The Heat Link box next to my boiler is crackling and smells burnt.", "safety_issue", "urgent",
     "Switch the heating system off at the breaker now and keep away from the device. Call us right away: safety issues are handled immediately by phone.",
     ["troubleshoot-thermostat", "support-plans"], None, "thermostat"),
    ("The Arc R6 power adapter sparked when I plugged it in.", "safety_issue", "urgent",
     "Unplug the adapter and do not use it again. Call us right away: safety issues are handled immediately by phone on every plan.",
     ["support-plans", "escalation-compensation"], None, "router"),
    ("I'd like to return the room sensor delivered 20 days ago to Nantes.", "return_refund", "normal",
     "The 14-day withdrawal period has ended, so it cannot be returned for a refund. If the sensor is defective, the 2-year legal guarantee covers repair or replacement.",
     ["refund-policy-eu-v3", "warranty-eu"], "EU", "thermostat"),
    ("Your warehouse received my returned Ember T2 8 business days ago and I still have no refund. I'm in Ohio.", "return_refund", "normal",
     "Refunds are issued within 5 business days after the item arrives, so yours is late. We are checking it with the warehouse now.",
     ["refund-policy-us-v3"], "US", "thermostat"),
    ("My router is 19 months old and the light blinks red all the time. I'm in Vienna.", "warranty_claim", "normal",
     "Your router is covered by the 2-year legal guarantee. Open a claim with your order number and serial number and we repair or replace it.",
     ["warranty-eu", "troubleshoot-router"], "EU", "router"),
    ("The display of my Ember T2 went blank 7 months after I bought it in Utah, and restarting doesn't help.", "warranty_claim", "normal",
     "That is within the 1-year limited warranty. Open a claim with your order number or serial number and we repair or replace it at no cost.",
     ["warranty-us-v2"], "US", "thermostat"),
    ("Can I put a password on a shared link? I'm on Vault Basic.", "technical_support", "low",
     "Password-protected links with an expiry date are available on Vault Plus and Vault Family, not on Vault Basic.",
     ["faq-storage"], None, "storage"),
    ("No heating at all in our Boise house and the Ember T2 shows C0.", "technical_support", "high",
     "C0 means the thermostat does not get enough power: it needs a C-wire, or connect the Havrel power adapter that came in the box.",
     ["troubleshoot-thermostat"], "US", "thermostat"),
    ("How do the parental controls work on the Arc R6?", "technical_support", "low",
     "In the Havrel app under Family you can set bedtimes, pause the internet for a device and filter adult sites, with no subscription.",
     ["faq-router"], None, "router"),
    ("Thinking of paying yearly for Vault Plus here in Ohio. What's the total?", "billing", "low",
     "Vault Plus costs USD 99 per year (USD 9.99 per month), plus sales tax.", ["pricing-us-2026"], "US", "storage"),
    ("Please move me from Vault Plus down to Vault Basic.", "billing", "normal",
     "A downgrade applies at the next billing date. If you use more than 200 GB then, uploads pause until you are under the limit; nothing is deleted.",
     ["faq-storage"], None, "storage"),
    ("Please apply the SLA credit for March; your status page says 99.6% for the month.", "billing", "normal",
     "Below 99.9% you get a 10% credit on your plan's monthly fee; it is applied to your next invoice.",
     ["vault-uptime-credits"], None, "storage"),
    ("I ordered 12 business days ago and nothing has arrived. I live in Munich.", "shipping", "high",
     "We are opening an investigation with the carrier, which takes up to 5 business days; if the parcel is not found, we send a replacement or refund you.",
     ["shipping-eu"], "EU", "all"),
    ("Do you deliver to Malta?", "shipping", "low",
     "Yes. The EU shop delivers to all 27 EU member states, including Malta.", ["shipping-eu"], "EU", "all"),
    ("My order came 3 business days late. Do I get my shipping fee back?", "shipping", "normal",
     "The shipping fee is refunded when an order arrives more than 5 business days after the promised date, so a 3-day delay does not qualify.",
     ["escalation-compensation"], None, "all"),
    ("Delete my account and all my data under the GDPR.", "privacy_request", "high",
     "Please send the request through the privacy portal at havrel.example/privacy. We verify you with a one-time code and answer within one month.",
     ["privacy-gdpr-eu"], "EU", "all"),
    ("What personal data do you hold about me? I live in Oregon.", "privacy_request", "high",
     "Submit a request to know at havrel.example/privacy or call 1-800-555-0163; we respond within 45 days.",
     ["privacy-ccpa-us"], "US", "all"),
    ("I forgot my password.", "account_access", "normal",
     "Use Forgot password on the sign-in page; we send a reset link to your account email.",
     ["account-security"], None, "all"),
    ("I got a sign-in alert from another country and my password no longer works.", "account_access", "urgent",
     "This may be an account takeover, so I'm escalating it to Tier 2 right away. We will verify you with a one-time code; we never ask for your password.",
     ["account-security", "escalation-compensation"], None, "all"),
    ("I lost access to my old email and need to change the one on my account.", "account_access", "normal",
     "We can verify you with an order number, the last 4 digits of your card and a device serial number; the change follows after 48 hours.",
     ["account-security"], None, "all"),
    ("Cancel my monthly Vault Plus, please. I'm in Nevada.", "cancellation", "normal",
     "Cancel in the Vault app under Settings > Subscription; the plan stays active until the end of the month you paid for.",
     ["subscription-cancellation-us-v2"], "US", "storage"),
    ("Cancel my annual Vault Family, it renewed 3 days ago. I'm in Lisbon.", "cancellation", "normal",
     "Renewals are not covered by the 14-day full refund, but you get a pro-rata refund of the 11 unused full months: EUR 169 x 11/12 = EUR 154.92.",
     ["subscription-cancellation-eu"], "EU", "storage"),
    ("Please cancel my order, the status already says Preparing.", "cancellation", "normal",
     "Orders in Preparing can no longer be cancelled; refuse the delivery or use the return process once it arrives.",
     ["order-changes"], None, "all"),
    ("Will the Ember T2 work with the oil furnace in my Maine house?", "technical_support", "low",
     "Yes. The US Ember T2 works with 24 V low-voltage systems, including oil furnaces.",
     ["thermostat-compatibility-us"], "US", "thermostat"),
    ("Need one more room sensor for the kids' room. Price in Germany?", "billing", "low",
     "The Ember room sensor costs EUR 39, VAT included.", ["pricing-eu-2026"], "EU", "thermostat"),
]


def triage(rng: random.Random) -> list[Example]:
    out = []
    for q, intent, priority, answer, cites, juris, product in _TRIAGE:
        ref = json.dumps({"intent": intent, "priority": priority, "answer": answer, "citations": cites}, ensure_ascii=False)
        meta: dict[str, Any] = {"priority": priority}
        if "EUR 169 x 11/12" in answer:
            meta["calculation"] = "169 x 11/12 = 154.92"
        out.append(ex("triage", q, ref, cites, [intent, priority], juris=juris, product=product, intent=intent,
                      schema="triage", **meta))
    return out


def generate(rng: random.Random) -> list[Example]:
    return long_context(rng) + multilingual(rng) + chats(rng) + triage(rng)
