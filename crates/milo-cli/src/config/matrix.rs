//! Matrix phases: a `matrix` table expanded into one phase per combination of its values, with
//! `matrix_exclude` and `matrix_include` as in GitHub Actions, and the selectors
//! (`test[python=3.12,*]`) that name some of the instances.

/// One combination: keys and values, in the order the keys are written (the `matrix` keys,
/// then the keys `matrix_include` adds, in the order they first appear).
pub type Combo = Vec<(String, String)>;

/// The combinations of `keys` (each key with its values, in the order written), without those
/// `exclude` removes, with those `include` adds or extends.
///
/// - The product is taken with the first key varying slowest.
/// - An `exclude` entry removes every combination holding all of its key-value pairs.
/// - An `include` entry extends each remaining combination of the product whose values agree
///   with it on the `matrix` keys it names with its other keys (overwriting what an earlier
///   include added, never a `matrix` value); if it extends none, it is added as a
///   combination of its own.
/// - The same combination twice is kept once.
pub fn expand(keys: &[(String, Vec<String>)], exclude: &[Combo], include: &[Combo]) -> Vec<Combo> {
    let mut combos: Vec<Combo> = if keys.is_empty() { Vec::new() } else { vec![Vec::new()] };
    for (key, values) in keys {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos.retain(|c| !exclude.iter().any(|e| e.iter().all(|(k, v)| get(c, k) == Some(v))));
    let original = |k: &str| keys.iter().any(|(o, _)| o == k);
    let base = combos.len();
    for inc in include {
        let mut extended = false;
        for c in &mut combos[..base] {
            let agrees = inc
                .iter()
                .filter(|(k, _)| original(k))
                .all(|(k, v)| get(c, k) == Some(v));
            if !agrees {
                continue;
            }
            extended = true;
            for (k, v) in inc.iter().filter(|(k, _)| !original(k)) {
                match c.iter_mut().find(|(ck, _)| ck == k) {
                    Some(slot) => slot.1 = v.clone(),
                    None => c.push((k.clone(), v.clone())),
                }
            }
        }
        if !extended {
            combos.push(inc.clone());
        }
    }
    // Every combination in one key order.
    let mut order: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    for (k, _) in include.iter().flatten() {
        if !order.contains(&k.as_str()) {
            order.push(k);
        }
    }
    let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(usize::MAX);
    let mut out: Vec<Combo> = Vec::with_capacity(combos.len());
    for mut c in combos {
        c.sort_by_key(|(k, _)| rank(k));
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn get<'a>(combo: &'a Combo, key: &str) -> Option<&'a String> {
    combo.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The name of phase `base`'s instance for `combo`: `test[python=3.12,suite=unit]`.
pub fn instance_name(base: &str, combo: &Combo) -> String {
    let values: Vec<String> = combo.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{base}[{}]", values.join(","))
}

/// A selector of matrix instances: `test[python=3.12,*]` (`*`: any value of the keys not
/// named), or `test[python=3.12,suite=unit]` (all keys named, in any order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector<'a> {
    pub base: &'a str,
    pub pairs: Vec<(&'a str, &'a str)>,
    pub wildcard: bool,
}

impl<'a> Selector<'a> {
    /// `text` as a selector; `None` unless it is `NAME[…]` with `KEY=VALUE` and `*` entries.
    pub fn parse(text: &'a str) -> Option<Self> {
        let inner = text.strip_suffix(']')?;
        let (base, inner) = inner.split_once('[')?;
        let mut pairs = Vec::new();
        let mut wildcard = false;
        for entry in inner.split(',').map(str::trim) {
            if entry == "*" {
                wildcard = true;
            } else {
                let (k, v) = entry.split_once('=')?;
                pairs.push((k.trim(), v.trim()));
            }
        }
        Some(Self { base, pairs, wildcard })
    }

    /// Whether the instance of `base` for `combo` is selected.
    pub fn matches(&self, base: &str, combo: &Combo) -> bool {
        self.base == base
            && self.pairs.iter().all(|(k, v)| get(combo, k).is_some_and(|cv| cv == v))
            && (self.wildcard || self.pairs.len() == combo.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn combo(pairs: &[(&str, &str)]) -> Combo {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_github_actions_example() {
        let keys = vec![
            ("python".to_owned(), vec!["3.11".to_owned(), "3.12".to_owned()]),
            ("suite".to_owned(), vec!["unit".to_owned(), "integration".to_owned()]),
        ];
        let out = expand(
            &keys,
            &[combo(&[("python", "3.11"), ("suite", "integration")])],
            &[
                combo(&[("python", "3.14"), ("suite", "unit")]),
                combo(&[("python", "3.12"), ("extra", "yes")]),
            ],
        );
        let names: Vec<String> = out.iter().map(|c| instance_name("test", c)).collect();
        assert_eq!(
            names,
            [
                "test[python=3.11,suite=unit]",
                "test[python=3.12,suite=unit,extra=yes]",
                "test[python=3.12,suite=integration,extra=yes]",
                "test[python=3.14,suite=unit]",
            ]
        );
    }

    #[test]
    fn selectors() {
        let c = combo(&[("python", "3.12"), ("suite", "unit")]);
        fn s(t: &str) -> Selector<'_> {
            Selector::parse(t).expect("a selector")
        }
        assert!(s("test[python=3.12,*]").matches("test", &c));
        assert!(s("test[suite=unit, python=3.12]").matches("test", &c));
        assert!(!s("test[python=3.12]").matches("test", &c));
        assert!(!s("test[python=3.11,*]").matches("test", &c));
        assert!(!s("other[*]").matches("test", &c));
        assert!(s("test[*]").matches("test", &c));
        assert_eq!(Selector::parse("test"), None);
        assert_eq!(Selector::parse("test[python]"), None);
    }

    /// The rules spelled out as plainly as possible: every index tuple of the product, then
    /// each rule applied to a set of maps.
    fn reference(
        keys: &[(String, Vec<String>)],
        exclude: &[Combo],
        include: &[Combo],
    ) -> BTreeSet<Vec<(String, String)>> {
        use std::collections::BTreeMap;
        let mut product: Vec<BTreeMap<String, String>> = Vec::new();
        let total: usize = if keys.is_empty() {
            0
        } else {
            keys.iter().map(|(_, v)| v.len()).product()
        };
        for mut n in 0..total {
            let mut m = BTreeMap::new();
            for (k, values) in keys.iter().rev() {
                m.insert(k.clone(), values[n % values.len()].clone());
                n /= values.len();
            }
            product.push(m);
        }
        let product: Vec<_> = product
            .into_iter()
            .filter(|m| !exclude.iter().any(|e| e.iter().all(|(k, v)| m.get(k) == Some(v))))
            .collect();
        let is_key = |k: &String| keys.iter().any(|(o, _)| o == k);
        let mut extended = product.clone();
        let mut added = Vec::new();
        for inc in include {
            let mut any = false;
            for (i, m) in product.iter().enumerate() {
                if inc.iter().filter(|(k, _)| is_key(k)).all(|(k, v)| m.get(k) == Some(v)) {
                    any = true;
                    for (k, v) in inc.iter().filter(|(k, _)| !is_key(k)) {
                        extended[i].insert(k.clone(), v.clone());
                    }
                }
            }
            if !any {
                added.push(inc.iter().cloned().collect::<BTreeMap<_, _>>());
            }
        }
        extended
            .into_iter()
            .chain(added)
            .map(|m| m.into_iter().collect())
            .collect()
    }

    fn arb_combo() -> impl Strategy<Value = Combo> {
        proptest::collection::btree_map("[abcx]", "[0-2]", 0..4).prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn expansion_matches_the_reference(
            sizes in proptest::collection::vec(0usize..4, 0..3),
            exclude in proptest::collection::vec(arb_combo(), 0..3),
            include in proptest::collection::vec(arb_combo(), 0..4),
        ) {
            let keys: Vec<(String, Vec<String>)> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (["a", "b", "c"][i].to_owned(), (0..n).map(|v| v.to_string()).collect()))
                .collect();
            let out = expand(&keys, &exclude, &include);
            let got: BTreeSet<Vec<(String, String)>> = out
                .iter()
                .map(|c| { let mut c = c.clone(); c.sort(); c })
                .collect();
            prop_assert_eq!(got.len(), out.len(), "no combination twice");
            prop_assert_eq!(got, reference(&keys, &exclude, &include));
        }
    }
}
