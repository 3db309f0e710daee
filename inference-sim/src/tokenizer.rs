//! A deterministic stand-in for a BPE tokenizer, so the same prompt always gives the same tokens and
//! so the same KV blocks.
//!
//! Text is cut the way GPT-style pre-tokenizers cut it: a run of letters or digits (with the single
//! space before it) is one token, split every [`MAX_PIECE`] characters; every other visible character
//! is its own token (again taking a space before it); other whitespace runs are one token. English
//! comes out near the real Llama 3 count (about 1.3 tokens per word). A token's id is a hash of its
//! text, so ids are stable across runs and machines.
//!
//! Chat prompts are rendered like Llama 3's template: `<|begin_of_text|>`, then per message
//! `<|start_header_id|>role<|end_header_id|>\n\n content <|eot_id|>`, then the assistant header.

use xxhash_rust::xxh3::xxh3_64;

/// Longest piece of a word counted as one token.
pub const MAX_PIECE: usize = 10;

pub const BEGIN_OF_TEXT: u32 = 128_000;
pub const START_HEADER: u32 = 128_006;
pub const END_HEADER: u32 = 128_007;
pub const END_OF_TURN: u32 = 128_009;
/// Ids of ordinary tokens stay below this, away from the special ones.
const VOCAB: u64 = 128_000;

/// Token ids of `text`.
pub fn encode(text: &str) -> Vec<u32> {
    let mut ids = Vec::with_capacity(text.len() / 4 + 1);
    for_each_piece(text, |piece| ids.push(id(piece)));
    ids
}

/// Number of tokens in `text` (the same as `encode(text).len()`, without allocating).
pub fn count(text: &str) -> usize {
    let mut n = 0;
    for_each_piece(text, |_| n += 1);
    n
}

/// One chat message, already reduced to its text.
#[derive(Debug, Clone, Copy)]
pub struct Turn<'a> {
    pub role: &'a str,
    pub content: &'a str,
}

/// Token ids of a chat rendered with the template, ending in the assistant header.
pub fn encode_chat<'a>(turns: impl IntoIterator<Item = Turn<'a>>) -> Vec<u32> {
    let mut ids = vec![BEGIN_OF_TEXT];
    let header = |ids: &mut Vec<u32>, role: &str| {
        ids.push(START_HEADER);
        ids.extend(encode(role));
        ids.push(END_HEADER);
        ids.push(id("\n\n"));
    };
    for turn in turns {
        header(&mut ids, turn.role);
        ids.extend(encode(turn.content));
        ids.push(END_OF_TURN);
    }
    header(&mut ids, "assistant");
    ids
}

fn id(piece: &str) -> u32 {
    // The modulo keeps ids in a vocabulary-sized range; it always fits in u32.
    (xxh3_64(piece.as_bytes()) % VOCAB) as u32
}

fn for_each_piece(text: &str, mut emit: impl FnMut(&str)) {
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_whitespace() {
            // A single space right before a visible character belongs to that character's token.
            let mut end = start + c.len_utf8();
            while let Some(&(i, next)) = chars.peek() {
                if !next.is_whitespace() {
                    break;
                }
                end = i + next.len_utf8();
                chars.next();
            }
            let next_visible = chars.peek().is_some();
            let run = &text[start..end];
            if next_visible && run.ends_with(' ') {
                if run.len() > 1 {
                    emit(&run[..run.len() - 1]);
                }
                // The space joins the piece that follows: handled by starting that piece here.
                let (i, first) = match chars.next() {
                    Some(pair) => pair,
                    None => break,
                };
                emit_piece(text, end - 1, i, first, &mut chars, &mut emit);
            } else {
                emit(run);
            }
        } else {
            emit_piece(text, start, start, c, &mut chars, &mut emit);
        }
    }
}

/// Emits the piece whose first visible character `first` is at `at`; the token text starts at `from`
/// (one byte earlier when it carries a leading space).
fn emit_piece(
    text: &str,
    from: usize,
    at: usize,
    first: char,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    emit: &mut impl FnMut(&str),
) {
    let mut end = at + first.len_utf8();
    if first.is_alphanumeric() {
        let mut len = 1;
        let mut piece_start = from;
        while let Some(&(i, next)) = chars.peek() {
            if !next.is_alphanumeric() {
                break;
            }
            if len == MAX_PIECE {
                emit(&text[piece_start..end]);
                piece_start = i;
                len = 0;
            }
            end = i + next.len_utf8();
            len += 1;
            chars.next();
        }
        emit(&text[piece_start..end]);
    } else {
        emit(&text[from..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_piece(text, |p| out.push(p.to_owned()));
        out
    }

    #[test]
    fn words_take_the_space_before_them_and_punctuation_stands_alone() {
        assert_eq!(
            pieces("The quick brown fox."),
            ["The", " quick", " brown", " fox", "."]
        );
        assert_eq!(pieces("a  b"), ["a", " ", " b"]);
        assert_eq!(pieces("x\n\ny "), ["x", "\n\n", "y", " "]);
        assert_eq!(pieces("hi, (you)"), ["hi", ",", " (", "you", ")"]);
    }

    #[test]
    fn long_words_are_split_into_pieces() {
        assert_eq!(
            pieces(" internationalization"),
            [" internatio", "nalization"]
        );
    }

    #[test]
    fn pieces_cover_the_text_exactly() {
        for text in [
            "Olá, mundo! ¿Qué tal?  \t\n fin",
            "",
            " ",
            "naïve café 東京 🚀 end ",
        ] {
            assert_eq!(pieces(text).concat(), text);
            assert_eq!(count(text), encode(text).len());
        }
    }

    #[test]
    fn the_same_text_gives_the_same_ids() {
        assert_eq!(encode("hello world"), encode("hello world"));
        assert_ne!(encode("hello world"), encode("hello there"));
    }

    #[test]
    fn chat_rendering_adds_the_template_tokens() {
        let ids = encode_chat([Turn {
            role: "user",
            content: "Hi there",
        }]);
        // bos + (hdr, user, /hdr, \n\n, Hi, " there", eot) + (hdr, assistant, /hdr, \n\n)
        assert_eq!(ids.len(), 1 + 7 + 4);
        assert_eq!(ids[0], BEGIN_OF_TEXT);
    }
}
