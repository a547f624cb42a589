//! JSON text as the caches keep it: the field names and enumerated values of one of regie's
//! own types — its schema's bounded vocabulary — written as one byte each (two past the thirtieth
//! word), everything else byte for byte.
//!
//! A cached spec or ledger is kept as its JSON text (see `kept`), and in a component's spec or a
//! month's ledger most of the text is names: `"serviceLevel":` three times in a ledger of one
//! segment, `"applicationHosting"` once per component. The words are the schema's, so that what
//! gets smaller is what every object of the kind says, never what one cluster happens to say
//! more often (no value a user chose is in a vocabulary).
//!
//! The tokens are the bytes 0x01–0x1F, which serde_json never writes outside an escape (JSON
//! text holds no raw control characters); a text holding one anyway is not packed. Unpacking
//! is then the exact inverse of packing, whatever the text: packing replaces byte sequences by
//! bytes the text does not hold, and unpacking replaces those bytes back.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The bytes 0x01..=0x1E stand for the first thirty words; 0x1F starts a two-byte token whose
/// second byte, 0x20 onwards, numbers the rest.
const ONE_BYTE: usize = 0x1E;
const TWO_BYTE: u8 = 0x1F;
/// Printable second bytes: 0x20..=0x7E.
const SECOND_BYTES: usize = 0x7F - 0x20;
/// The most words a vocabulary holds; the others stay as text.
pub const MOST_WORDS: usize = ONE_BYTE + SECOND_BYTES;

/// The words of one type's JSON text: `"name":` for each property, `"value"` for each
/// enumerated string, in the schema's order (the top level's first: those get one byte).
#[derive(Debug)]
pub struct Vocabulary {
    words: Vec<Box<str>>,
    index: HashMap<Box<str>, usize>,
}

impl Vocabulary {
    /// A vocabulary of `words`, each once; at most [`MOST_WORDS`].
    pub fn new(words: &[&str]) -> Vocabulary {
        let mut vocabulary = Vocabulary {
            words: Vec::new(),
            index: HashMap::new(),
        };
        for word in words {
            vocabulary.add(word);
        }
        vocabulary
    }

    fn add(&mut self, word: &str) {
        if self.words.len() < MOST_WORDS && !self.index.contains_key(word) {
            self.index.insert(word.into(), self.words.len());
            self.words.push(word.into());
        }
    }

    /// The vocabulary of `T`'s JSON schema: what the lists above are checked against. Not
    /// built at run time, where it would be the only use of the schemas' code.
    #[cfg(test)]
    pub fn of<T: schemars::JsonSchema>() -> Vocabulary {
        let schema = schemars::schema_for!(T);
        Vocabulary::of_schema(schema.as_value())
    }

    /// Property names and enumerated strings of a JSON schema, breadth first, each once; at
    /// most [`MOST_WORDS`].
    #[cfg(test)]
    pub fn of_schema(schema: &serde_json::Value) -> Vocabulary {
        let mut vocabulary = Vocabulary::new(&[]);
        let mut add = |word: String| vocabulary.add(&word);
        let mut level = vec![schema];
        while !level.is_empty() {
            let mut next = Vec::new();
            for value in level {
                let serde_json::Value::Object(map) = value else {
                    if let serde_json::Value::Array(items) = value {
                        next.extend(items);
                    }
                    continue;
                };
                if let Some(serde_json::Value::Object(properties)) = map.get("properties") {
                    for name in properties.keys() {
                        add(format!("{}:", serde_json::Value::from(name.as_str())));
                    }
                }
                if let Some(serde_json::Value::Array(values)) = map.get("enum") {
                    for v in values.iter().filter(|v| v.is_string()) {
                        add(v.to_string());
                    }
                }
                if let Some(serde_json::Value::String(constant)) = map.get("const") {
                    add(serde_json::Value::from(constant.as_str()).to_string());
                }
                next.extend(map.values());
            }
            level = next;
        }
        vocabulary
    }

    /// How many words it has.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The longest word at the start of `text` (which starts with a `"`), with its number.
    fn word_at(&self, text: &str) -> Option<(usize, usize)> {
        let close = text[1..].find('"')? + 1;
        let with_colon = text.get(..close + 2).filter(|w| w.ends_with(':'));
        let quoted = &text[..=close];
        with_colon
            .and_then(|w| self.index.get(w).map(|&n| (w.len(), n)))
            .or_else(|| self.index.get(quoted).map(|&n| (quoted.len(), n)))
    }
}

/// The words of `HostingComponentSpec`'s schema (drift-checked against it by a unit test).
pub static COMPONENT_SPEC: Words = Words::new(&[
    r#""class":"#,
    r#""hosted":"#,
    r#""probe":"#,
    r#""saas":"#,
    r#""serviceLevel":"#,
    r#""applicationHosting""#,
    r#""systemIntegration""#,
    r#""dataManagement""#,
    r#""expectStatus":"#,
    r#""path":"#,
    r#""env":"#,
    r#""healthPath":"#,
    r#""image":"#,
    r#""port":"#,
    r#""replicas":"#,
    r#""resources":"#,
    r#""limits":"#,
    r#""requests":"#,
    r#""url":"#,
]);

/// The words of `TenantSpec`'s schema (drift-checked against it by a unit test).
pub static TENANT_SPEC: Words = Words::new(&[
    r#""access":"#,
    r#""billing":"#,
    r#""displayName":"#,
    r#""inhabitants":"#,
    r#""membership":"#,
    r#""municipalityCode":"#,
    r#""namespace":"#,
    r#""quota":"#,
    r#""serviceLevel":"#,
    r#""groups":"#,
    r#""id":"#,
    r#""scheme":"#,
    r#""monthly""#,
    r#""quarterly""#,
    r#""joined":"#,
    r#""leaves":"#,
    r#""city":"#,
    r#""country":"#,
    r#""postalCode":"#,
    r#""street":"#,
    r#""cpu":"#,
    r#""memory":"#,
    r#""pods":"#,
    r#""address":"#,
    r#""customerReference":"#,
    r#""electronicAddress":"#,
    r#""invoicing":"#,
    r#""purchaseOrderReference":"#,
]);

/// The words of `WorkplacePackageSpec`'s schema (drift-checked against it by a unit test).
pub static PACKAGE_SPEC: Words = Words::new(&[
    r#""accountSource":"#,
    r#""accounts":"#,
    r#""profile":"#,
    r#""declared""#,
    r#""measured""#,
    r#""max""#,
    r#""basis":"#,
    r#""interval":"#,
    r#""jsonPointer":"#,
    r#""timeout":"#,
    r#""tokenSecretRef":"#,
    r#""url":"#,
]);

/// The words of `UsageStatus`'s schema (drift-checked against it by a unit test).
pub static USAGE_STATUS: Words = Words::new(&[
    r#""closed":"#,
    r#""conditions":"#,
    r#""deliveredSegments":"#,
    r#""observedGeneration":"#,
    r#""segmentCount":"#,
    r#""segments":"#,
    r#""applicationHosting""#,
    r#""systemIntegration""#,
    r#""dataManagement""#,
    r#""accounts":"#,
    r#""components":"#,
    r#""from":"#,
    r#""measuredAccounts":"#,
    r#""serviceLevel":"#,
    r#""to":"#,
    r#""class":"#,
    r#""name":"#,
    r#""lastTransitionTime":"#,
    r#""message":"#,
    r#""reason":"#,
    r#""status":"#,
    r#""type":"#,
]);

/// A kind's word list, and its vocabulary built the first time it is used.
pub struct Words {
    list: &'static [&'static str],
    vocabulary: OnceLock<Vocabulary>,
}

impl Words {
    pub const fn new(list: &'static [&'static str]) -> Words {
        Words {
            list,
            vocabulary: OnceLock::new(),
        }
    }

    pub fn vocabulary(&self) -> &Vocabulary {
        self.vocabulary.get_or_init(|| Vocabulary::new(self.list))
    }
}

/// Whether `byte` is one of the tokens.
fn is_token(byte: u8) -> bool {
    (0x01..=TWO_BYTE).contains(&byte)
}

/// `text` with its vocabulary's words as tokens; None when `text` holds a token byte itself
/// (serde_json never writes one), so that it is kept as it is.
pub fn pack(text: &str, vocabulary: &Vocabulary) -> Option<Box<str>> {
    if text.bytes().any(is_token) {
        return None;
    }
    let mut packed = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('"') {
        packed.push_str(&rest[..at]);
        rest = &rest[at..];
        match vocabulary.word_at(rest) {
            Some((len, n)) => {
                if n < ONE_BYTE {
                    packed.push(char::from(n as u8 + 1));
                } else {
                    packed.push(char::from(TWO_BYTE));
                    packed.push(char::from((n - ONE_BYTE) as u8 + 0x20));
                }
                rest = &rest[len..];
            }
            None => {
                packed.push('"');
                rest = &rest[1..];
            }
        }
    }
    packed.push_str(rest);
    Some(packed.into_boxed_str())
}

/// The text `packed` was packed from (with the same vocabulary). A token that names no word
/// (not written by [`pack`]) is kept as it is.
pub fn unpack(packed: &str, vocabulary: &Vocabulary) -> String {
    let mut text = String::with_capacity(packed.len() * 2);
    let mut chars = packed.chars().peekable();
    while let Some(c) = chars.next() {
        let Some(token) = u8::try_from(c).ok().filter(|b| is_token(*b)) else {
            text.push(c);
            continue;
        };
        // The word's number, and the second byte of a two-byte token.
        let (n, second) = if token == TWO_BYTE {
            match chars.next_if(|s| (' '..='~').contains(s)) {
                Some(second) => (ONE_BYTE + (u32::from(second) - 0x20) as usize, Some(second)),
                None => (usize::MAX, None),
            }
        } else {
            (usize::from(token) - 1, None)
        };
        match vocabulary.words.get(n) {
            Some(word) => text.push_str(word),
            // Not written by `pack`: kept as it is.
            None => text.extend(std::iter::once(c).chain(second)),
        }
    }
    text
}

/// A JSON text as kept: packed, or as it came when it does not pack (it holds a token byte,
/// which serde_json never writes).
#[derive(Clone, Debug, PartialEq)]
pub enum KeptText {
    Packed(Box<str>),
    Plain(Box<str>),
}

impl KeptText {
    pub fn new(text: String, vocabulary: &Vocabulary) -> KeptText {
        match pack(&text, vocabulary) {
            Some(packed) => KeptText::Packed(packed),
            None => KeptText::Plain(text.into_boxed_str()),
        }
    }

    /// The text, whole.
    pub fn text(&self, vocabulary: &Vocabulary) -> Cow<'_, str> {
        match self {
            KeptText::Packed(packed) => unpack(packed, vocabulary).into(),
            KeptText::Plain(text) => Cow::Borrowed(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regie_crds::generated::UsageStatus;
    use regie_crds::tenancy::{HostingComponentSpec, TenantSpec, WorkplacePackageSpec};

    fn component_spec() -> &'static str {
        r#"{"class":"applicationHosting","hosted":{"image":"registry.example/app:1.0","port":8080,"healthPath":"/healthz"}}"#
    }

    /// `text` packs to under half its length with `words` and unpacks to itself.
    fn packs_to_under_half(text: &str, words: &Words) {
        let words = words.vocabulary();
        let packed = pack(text, words).expect("packs");
        let (packed_len, len) = (packed.len(), text.len());
        assert!(packed_len * 2 < len, "{packed_len} of {len}");
        assert_eq!(unpack(&packed, words), text);
    }

    #[test]
    fn a_spec_packs_to_under_half_and_unpacks_to_the_same_text() {
        packs_to_under_half(component_spec(), &COMPONENT_SPEC);
    }

    /// The lists the operator packs with are what the schemas say; when a type changes, the
    /// message gives the list to put in its place.
    #[test]
    fn the_word_lists_are_their_schemas_words() {
        let lists = [
            (&COMPONENT_SPEC, Vocabulary::of::<HostingComponentSpec>()),
            (&TENANT_SPEC, Vocabulary::of::<TenantSpec>()),
            (&PACKAGE_SPEC, Vocabulary::of::<WorkplacePackageSpec>()),
            (&USAGE_STATUS, Vocabulary::of::<UsageStatus>()),
        ];
        for (list, schema) in lists {
            let words: Vec<&str> = schema.words.iter().map(|w| &**w).collect();
            assert_eq!(
                list.list,
                words.as_slice(),
                "the schema's words are {words:#?}"
            );
        }
    }

    #[test]
    fn a_months_ledger_packs_to_under_half() {
        let text = r#"{"segments":[{"from":"2026-12-05T04:20:00Z","serviceLevel":"silver","accounts":{"standard":250},"components":[{"name":"app-a","class":"applicationHosting","serviceLevel":"silver"},{"name":"app-b","class":"applicationHosting","serviceLevel":"silver"}]}],"closed":false}"#;
        let status: UsageStatus = serde_json::from_str(text).expect("a ledger");
        assert_eq!(serde_json::to_string(&status).expect("json"), text);
        packs_to_under_half(text, &USAGE_STATUS);
    }

    #[test]
    fn the_vocabularies_are_the_schemas_names_and_values_top_level_first() {
        let words = Vocabulary::of::<HostingComponentSpec>();
        assert!(words.len() > 5 && words.len() <= MOST_WORDS);
        let first: Vec<&str> = words.words.iter().map(|w| &**w).collect();
        assert!(first.contains(&r#""class":"#), "{first:?}");
        assert!(first.contains(&r#""applicationHosting""#), "{first:?}");
        for other in [
            Vocabulary::of::<TenantSpec>(),
            Vocabulary::of::<WorkplacePackageSpec>(),
            Vocabulary::of::<UsageStatus>(),
        ] {
            assert!(!other.is_empty());
        }
        let ledger = Vocabulary::of::<UsageStatus>();
        assert!(ledger.index.contains_key(r#""serviceLevel":"#));
    }

    /// Whatever the text — words inside strings, escaped quotes, a quote left open, text that
    /// is not JSON, other scripts — unpacking gives back what was packed.
    #[test]
    fn any_text_without_token_bytes_comes_back_exactly() {
        let words = Vocabulary::of::<HostingComponentSpec>();
        for text in [
            "",
            "\"",
            "\"\"",
            "\"class\"",
            "\"class\":",
            "{\"class\":\"class\"}",
            "{\"a\\\"class\":\"x\\\"applicationHosting\\\"\"}",
            "\"applicationHosting",
            "gemeente \"Tholen\" — ’s-Hertogenbosch \"class\":ü",
            "{\"hosted\":{\"port\":8080}}\"",
            "~~\u{7f}\"image\":",
        ] {
            let packed = pack(text, &words).expect("no token bytes");
            assert_eq!(unpack(&packed, &words), text, "{text:?}");
        }
        // A text that holds a token byte is not packed: it is kept as it is.
        let odd = "{\"class\":\"\u{1}\"}";
        assert!(pack(odd, &words).is_none());
        let kept = KeptText::new(odd.to_string(), &words);
        assert!(matches!(kept, KeptText::Plain(_)));
        assert_eq!(kept.text(&words), odd);
        let kept = KeptText::new(component_spec().to_string(), &words);
        assert!(matches!(kept, KeptText::Packed(_)));
        assert_eq!(kept.text(&words), component_spec());
    }

    #[test]
    fn words_past_the_thirtieth_take_two_bytes() {
        let properties: serde_json::Map<String, serde_json::Value> = (0..40)
            .map(|i| {
                (
                    format!("field{i:02}"),
                    serde_json::json!({"type": "string"}),
                )
            })
            .collect();
        let words = Vocabulary::of_schema(&serde_json::json!({ "properties": properties }));
        assert_eq!(words.len(), 40);
        let text = r#"{"field00":"a","field35":"b"}"#;
        let packed = pack(text, &words).expect("packs");
        assert_eq!(&*packed, "{\u{1}\"a\",\u{1f}%\"b\"}");
        assert_eq!(unpack(&packed, &words), text);
        // A token naming no word stays as it is.
        assert_eq!(unpack("\u{1f}~", &words), "\u{1f}~");
        assert_eq!(unpack("\u{1f}", &words), "\u{1f}");
    }

    #[test]
    fn a_vocabulary_holds_at_most_its_tokens() {
        let properties: serde_json::Map<String, serde_json::Value> = (0..300)
            .map(|i| (format!("f{i:03}"), serde_json::json!({})))
            .collect();
        let words = Vocabulary::of_schema(&serde_json::json!({ "properties": properties }));
        assert_eq!(words.len(), MOST_WORDS);
        let text = r#"{"f000":1,"f299":2}"#;
        assert_eq!(unpack(&pack(text, &words).expect("packs"), &words), text);
    }
}
