//! Pages of in-memory listings, with the cursors the DynamoDB stores hand out (the
//! sort key of the last item, encoded).

use herald_store::{decode_cursor, encode_cursor, Page, StoreError, MAX_PAGE_SIZE};

/// The page of `items` (sorted by their key, ascending) after `cursor`, of at most
/// `limit` (clamped to 1..=[`MAX_PAGE_SIZE`]) items.
pub fn page<T>(
    items: impl IntoIterator<Item = (String, T)>,
    limit: i32,
    cursor: Option<&str>,
) -> Result<Page<T>, StoreError> {
    let after = cursor.map(decode_cursor).transpose()?;
    let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
    let mut rest = items
        .into_iter()
        .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
        .peekable();
    let mut page = Vec::new();
    let mut last = None;
    while page.len() < limit {
        let Some((key, item)) = rest.next() else {
            break;
        };
        page.push(item);
        last = Some(key);
    }
    let next_cursor = match (rest.peek(), last) {
        (Some(_), Some(last)) => Some(encode_cursor(&last)),
        _ => None,
    };
    Ok(Page {
        items: page,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_resume_after_their_cursor_and_the_last_has_none() {
        let items = || (1..=5).map(|n| (format!("k{n}"), n));
        let first = page(items(), 2, None).unwrap();
        assert_eq!(first.items, vec![1, 2]);
        let second = page(items(), 2, first.next_cursor.as_deref()).unwrap();
        assert_eq!(second.items, vec![3, 4]);
        let last = page(items(), 2, second.next_cursor.as_deref()).unwrap();
        assert_eq!(last.items, vec![5]);
        assert_eq!(last.next_cursor, None);
        assert!(matches!(
            page(items(), 2, Some("!!")),
            Err(StoreError::BadCursor)
        ));
    }
}
