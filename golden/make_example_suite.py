"""Generate golden/example.jsonl: ~300 prompts over the edge cases the distillation guide names, with references.

    python golden/make_example_suite.py                      # prompts + references from the default teacher
    python golden/make_example_suite.py --teacher ART        # references from another artifact or module:function
    python golden/make_example_suite.py --no-record          # prompts only (record later: edgefarm golden record)
    python golden/make_example_suite.py --tensor             # also example_{onnx,tflite}_tiny.jsonl (tier 1)

Every prompt is written below (no download); noisy variants are derived from the clean sentences with a fixed
random seed, so the file is reproducible. The default teacher is the tiny llama sample from harness.samples
(`write_gguf(path, TINY, seed=0)`, byte-identical on every machine), decoded greedily by llama.cpp. That model
has random weights: its references are nonsense text, and what the suite checks is that a student reproduces
its teacher's behaviour, not that the text is good. See golden/README.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness.golden.record import record_references  # noqa: E402
from harness.golden.suite import (  # noqa: E402
    SCHEMA, Criterion, Defaults, Generation, Header, Item, Tensor, write_suite,
)

# Clean, complete prompts: questions and instructions a small assistant model gets.
CLEAN = [
    "What is the capital of France?",
    "Explain why the sky is blue in one sentence.",
    "Write a short poem about the sea.",
    "How do I reset my password?",
    "List three fruits that are red.",
    "Translate 'good morning' into Spanish.",
    "What is the boiling point of water at sea level?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "Give me a recipe for a simple tomato soup.",
    "Why do cats purr?",
    "What time zone is Tokyo in?",
    "Suggest a name for a small coffee shop.",
    "How many legs does a spider have?",
    "What does a battery's mAh rating mean?",
    "Describe a rainy afternoon in a city.",
    "Write an email asking to move a meeting to Friday.",
    "What is the difference between RAM and storage?",
    "Convert 10 kilometres to miles.",
    "Who painted the Mona Lisa?",
    "Tell me a joke about computers.",
    "What should I pack for a weekend hiking trip?",
    "Explain what a neural network is to a child.",
    "Is it safe to charge a phone overnight?",
    "What are the primary colours?",
    "How does a refrigerator keep food cold?",
    "Recommend a book for a long train journey.",
    "What is photosynthesis?",
    "Write a haiku about autumn leaves.",
    "How can I make my laptop battery last longer?",
    "What is the largest planet in the solar system?",
    "Give two tips for learning a new language.",
    "Why is exercise good for the heart?",
    "What is the square root of 144?",
    "Describe the smell of fresh bread.",
    "How do airplanes stay in the air?",
    "What is a good way to start a presentation?",
    "Explain the rules of chess in three sentences.",
    "What causes the seasons on Earth?",
    "Write a thank-you note to a neighbour.",
    "How long should I boil an egg for a soft yolk?",
    "What is the main ingredient of guacamole?",
    "Why do we dream?",
    "What is the speed of light?",
    "How do I back up the photos on my phone?",
    "Name a famous bridge in San Francisco.",
    "What is a compiler?",
    "Plan a one-day trip to the seaside.",
    "What does a thermostat do?",
    "How do bees make honey?",
    "Give a one-line definition of machine learning.",
]

# Statements cut off mid-sentence: the model must continue them.
INCOMPLETE = [
    "The quickest way to the train station is",
    "Once upon a time, in a small village by the",
    "The main reason the experiment failed was",
    "To install the update, first open the",
    "My favourite thing about summer is",
    "The meeting was cancelled because the",
    "If you mix blue and yellow paint you get",
    "The recipe calls for two cups of flour and",
    "After the storm, the streets were",
    "The best way to learn to code is to",
    "She opened the door and saw",
    "The battery drained so fast because",
    "In 1969, the first humans landed on",
    "The model runs faster on the phone when",
    "He forgot his umbrella, so",
    "Water freezes at zero degrees and boils at",
    "The capital of Germany is",
    "Please remember to bring your",
    "The museum opens at nine and closes at",
    "The reason I am late is that",
    "A good password should contain",
    "The teacher asked the students to",
    "When the lights went out, everyone",
    "The cheapest flight to Lisbon leaves on",
    "Our team won the match by",
    "The device overheated after running the benchmark for",
    "Mix the eggs with the sugar until",
    "The three largest cities in Spain are",
    "To save energy at home, you can",
    "The train was delayed by forty minutes because",
    "I would like to order a",
    "The results of the survey show that most people",
    "The student model is smaller than the teacher, but",
    "At the end of the road there is a",
    "The first rule of the club is",
    "My grandmother always said that",
    "The library is closed on Sundays and",
    "Add a pinch of salt and then",
    "Scientists discovered that the",
    "The password must be at least",
]

# Very short prompts: one to three words, fragments, single symbols.
SHORT = [
    "Hi", "Hello!", "Why?", "Weather?", "Help", "Thanks", "ok", "Yes or no?", "2+2=", "Paris?", "Define AI.",
    "Recipe?", "Tell me more", "cat", "Go on", "Summarise.", "Translate: dog", "Good night", "Who?", "What now?",
    "Coffee or tea?", "Sunday plans", "Stop", "Repeat", "?", "Joke please", "Synonym: happy", "Capital of Peru",
    "Battery low", "Open the app", "Time?", "Sing", "Password reset", "Wifi down", "Idea", "Next step?",
    "Explain", "Hmm", "Why not", "Begin",
]

# Mixed languages and scripts, code-switching inside one prompt, and non-English prompts.
MIXED = [
    "Wie spät ist es? What time is it in Berlin?",
    "Can you translate 'Ich habe Hunger' into English?",
    "Je voudrais un café, please, with milk.",
    "¿Dónde está la estación de tren? I am lost.",
    "Explain 'Schadenfreude' in simple English.",
    "東京の天気は? What's the weather in Tokyo?",
    "Как дела? Answer in English, please.",
    "What does 'merci beaucoup' mean?",
    "Ich möchte ein Ticket nach München, one way.",
    "Write 'thank you' in Japanese: ありがとう and explain it.",
    "Combien coûte ce livre? How much is this book?",
    "Переведи на английский: доброе утро.",
    "The word 'saudade' in Portuguese means",
    "नमस्ते, how are you today?",
    "مرحبا! Translate this greeting to English.",
    "Ciao! Come stai? Answer in English.",
    "Mi casa es su casa: what does this mean?",
    "Das Wetter ist schön today, isn't it?",
    "我想喝茶。Please translate.",
    "Bonjour tout le monde, welcome to the meeting.",
    "Explain the German word 'Fernweh'.",
    "Kannst du mir helfen? I need help with my phone.",
    "¿Qué hora es? It's almost noon.",
    "Tschüss and goodbye: are they the same?",
    "Où est la bibliothèque? Near the station?",
    "Hygge is a Danish word for",
    "Привет! What does this Russian word mean?",
    "Teşekkürler means thank you in Turkish; how do you say please?",
    "Olá, tudo bem? Respond in Portuguese.",
    "Gracias por la ayuda, see you tomorrow.",
    "Zeit ist Geld: is there an English proverb like this?",
    "カメラのバッテリーが切れた。What should I do?",
    "Dziękuję bardzo means",
    "Vamos a la playa this weekend, right?",
    "Il fait froid, so bring a jacket.",
    "Was ist ein neuronales Netz? Explain briefly.",
    "Una cerveza, por favor, and the bill.",
    "안녕하세요! How do you say hello in Korean?",
    "Kiitos means thank you in Finnish. Really?",
    "Guten Appetit: when do you say it?",
    "C'est la vie: explain this French phrase.",
    "Le modèle est trop lent on the Raspberry Pi.",
    "Der Akku ist leer, the phone died.",
    "El tren llega a las ocho, or maybe nine.",
    "Γεια σου! Is this Greek?",
]

# Longer prompts with some context.
LONG = [
    "I am planning a trip to Italy next spring with two friends. We want to visit Rome, Florence and Venice "
    "in ten days, travelling by train. Suggest an itinerary and tell us what we should not miss.",
    "Our team is moving a speech recognition model from a laptop to a phone. The phone has four gigabytes of "
    "memory and the model needs about one. What should we measure before we ship it?",
    "My tomato plants have yellow leaves at the bottom, and the fruit is small. I water them every morning "
    "and they get about six hours of sun. What could be wrong?",
    "Write a short story that starts in a train station at midnight, has a lost suitcase in the middle and "
    "ends with a phone call.",
    "Compare electric cars and petrol cars in terms of cost, maintenance and environmental impact, in a few "
    "sentences each.",
    "A customer writes that the app crashes when they open the camera after updating. They use an older "
    "phone. Draft a polite reply that asks for the information we need.",
    "Explain how a student model is distilled from a larger teacher model, why it is smaller, and what can "
    "go wrong when it is quantized for a phone.",
    "I have flour, eggs, milk, butter, apples and cinnamon. What can I bake this afternoon, and how long "
    "will it take?",
    "Describe the water cycle from the ocean to the clouds and back, as you would to a ten-year-old.",
    "Our nightly benchmark got five percent slower on one board but not on the others. List the likely "
    "causes, from the most to the least likely.",
]


def typo(text: str, rng: random.Random, n: int) -> str:
    """n character-level typos: swap two neighbours, drop one, or double one, at letters only."""
    chars = list(text)
    for _ in range(n):
        pos = [i for i in range(len(chars) - 1) if chars[i].isalpha() and chars[i + 1].isalpha()]
        if not pos:
            break
        i = rng.choice(pos)
        op = rng.randrange(3)
        if op == 0:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif op == 1:
            del chars[i]
        else:
            chars.insert(i, chars[i])
    return "".join(chars)


def casing(text: str, rng: random.Random) -> str:
    style = rng.randrange(3)
    if style == 0:
        return text.upper()
    if style == 1:
        return text.lower()
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)


def punctuation(text: str, rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return "".join(c for c in text if c.isalnum() or c.isspace())
    if style == 1:
        return text.rstrip(".?!") + rng.choice(["!!!", "???", "?!", "...", " !!"])
    if style == 2:
        return text.replace(" ", "  ").replace(",", " ,").replace("?", " ?")
    return ",".join(text.split(" ", 2)) if " " in text else text + ";"


def build_items(seed: int = 0) -> list[Item]:
    """The example suite's items, without references."""
    rng = random.Random(seed)
    items: list[Item] = []

    def add(prefix: str, prompt: str, tags: tuple[str, ...], max_tokens: int = 16, temperature: float = 0.0) -> None:
        n = len(items)
        items.append(Item(id=f"{prefix}-{sum(1 for i in items if i.id.startswith(prefix + '-')):03d}", line=0,
                          criterion=Criterion(), prompt=prompt, tags=tags,
                          generation=Generation(max_tokens=max_tokens, temperature=temperature, seed=n)))

    for p in CLEAN:
        add("clean", p, ("clean", "question" if p.endswith("?") else "instruction"))
    for p in INCOMPLETE:
        add("incomplete", p, ("incomplete",))
    for p in SHORT:
        add("short", p, ("short",), max_tokens=8)
    for p in MIXED:
        add("mixed", p, ("mixed-language",))
    for p in LONG:
        add("long", p, ("long",), max_tokens=24)
    # Noisy variants of the clean and incomplete prompts: typos, casing, punctuation, and all three at once.
    for base in rng.sample(CLEAN + INCOMPLETE, 20):
        add("noisy", typo(base, rng, rng.randint(1, 3)), ("noisy", "typo"))
    for base in rng.sample(CLEAN + INCOMPLETE, 20):
        add("noisy", casing(base, rng), ("noisy", "casing"))
    for base in rng.sample(CLEAN + INCOMPLETE, 20):
        add("noisy", punctuation(base, rng), ("noisy", "punctuation"))
    for base in rng.sample(CLEAN + INCOMPLETE + MIXED, 20):
        add("noisy", punctuation(casing(typo(base, rng, 2), rng), rng), ("noisy", "typo", "casing", "punctuation"))
    # Seeded sampling (temperature > 0): the same seed must give the same text on every run.
    for base in rng.sample(CLEAN, 15):
        add("sampled", base, ("clean", "sampled"), temperature=0.8)
    return items


HEADER = Header(
    schema=SCHEMA,
    name="edgefarm-example",
    description="Example golden suite: clean, incomplete, short, noisy (typos, casing, punctuation), "
                "mixed-language and long prompts, greedy and seeded sampling. References recorded from the "
                "teacher named in `teacher`; see golden/README.md.",
    min_pass_rate=0.9,
    defaults=Defaults(criterion={"min_similarity": 0.8, "min_chrf": 0.5, "logits_atol": 0.01},
                      generation={"max_tokens": 16}),
)


def tensor_items(kind: str) -> list[Item]:
    """Tier-1 items for the tiny ONNX transformer (input_ids -> logits) or TFLite MLP (features -> probs)."""
    items: list[Item] = []

    def add(name: str, tags: tuple[str, ...], **spec: object) -> None:
        inp = "input_ids" if kind == "onnx" else "features"
        crit = Criterion(atol=1e-4, rtol=1e-3) if kind == "onnx" else Criterion(atol=1e-5, rtol=1e-4)
        items.append(Item(id=f"{kind}-{name}", line=0, criterion=crit, generation=Generation(), tags=tags,
                          input={inp: Tensor(**spec)}))  # type: ignore[arg-type]

    if kind == "onnx":
        for seq in (1, 2, 4, 8):
            add(f"seq{seq}", ("random",), dtype="int64", shape=[1, seq], seed=seq, high=512)
        add("batch2", ("batch",), dtype="int64", shape=[2, 4], seed=11, high=512)
        add("all-zero-ids", ("edge",), dtype="int64", shape=[1, 4], values=[0.0] * 4)
        add("max-id", ("edge",), dtype="int64", shape=[1, 4], values=[511.0] * 4)
        add("repeated-token", ("edge",), dtype="int64", shape=[1, 6], values=[7.0] * 6)
        return items
    for seed in range(12):
        add(f"normal{seed}", ("random",), dtype="float32", shape=[1, 64], seed=seed)
    add("zeros", ("edge",), dtype="float32", shape=[1, 64], values=[0.0] * 64)
    add("ones", ("edge",), dtype="float32", shape=[1, 64], values=[1.0] * 64)
    add("large", ("edge", "large"), dtype="float32", shape=[1, 64], values=[100.0 * (-1) ** i for i in range(64)])
    add("tiny", ("edge",), dtype="float32", shape=[1, 64], values=[1e-6 * i for i in range(64)])
    add("negative", ("edge",), dtype="float32", shape=[1, 64], values=[-0.5] * 64)
    add("one-hot", ("edge",), dtype="float32", shape=[1, 64], values=[1.0] + [0.0] * 63)
    return items


def write_tensor_suites() -> None:
    """example_onnx_tiny.jsonl and example_tflite_tiny.jsonl, recorded from the tiny samples (seed 0)."""
    from harness.samples import ONNX_NAME, TFLITE_NAME, write_samples

    with tempfile.TemporaryDirectory() as tmp:
        onnx, tflite, _ = write_samples(Path(tmp), "tiny", seed=0)
        for kind, art, name in (("onnx", onnx, ONNX_NAME), ("tflite", tflite, TFLITE_NAME)):
            out = HERE / f"example_{kind}_tiny.jsonl"
            header = Header(schema=SCHEMA, name=f"edgefarm-example-{kind}-tiny", min_pass_rate=1.0,
                            description=f"Tier-1 example for the tiny {kind} sample: shapes, dtypes, finite, "
                                        "deterministic, within atol/rtol of the teacher's outputs.")
            write_suite(out, header, tensor_items(kind))
            rec = record_references(out, art, ref=f"harness.samples tiny {name}, seed 0",
                                    note="seeded random weights; edgefarm samples DIR --size tiny writes it")
            print(f"wrote {rec.recorded} tensor items to {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, default=HERE / "example.jsonl")
    ap.add_argument("--teacher", help="artifact path or module:function (default: the tiny llama sample, seed 0)")
    ap.add_argument("--no-record", action="store_true", help="write the prompts only")
    ap.add_argument("--tensor", action="store_true", help="also write the tensor (tier 1) example suites")
    args = ap.parse_args(argv)
    if args.tensor:
        write_tensor_suites()
    items = build_items()
    write_suite(args.out, HEADER, items)
    if args.no_record:
        print(f"wrote {len(items)} prompts to {args.out} (no references)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        teacher, ref, note = args.teacher, args.teacher, None
        if teacher is None:
            from harness.samples import gguf_model, write_gguf

            teacher = str(write_gguf(Path(tmp) / "student-llama-q8_0.gguf", gguf_model.TINY, seed=0))
            ref = "harness.samples tiny GGUF, seed 0 (edgefarm samples DIR --size tiny -> student-llama-q8_0.gguf)"
            note = ("random-weight llama, greedy decoding by llama.cpp: the references are nonsense text; "
                    "the suite checks that a student reproduces this teacher's behaviour")
        rec = record_references(args.out, teacher, ref=ref, note=note)
    print(f"wrote {len(items)} items with references from {rec.teacher.ref} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
