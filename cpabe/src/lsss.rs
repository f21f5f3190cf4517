//! Policy → linear secret-sharing scheme (LSSS) matrix, and the
//! reconstruction coefficients a satisfying attribute set uses.
//!
//! Rows follow the policy's leaves in depth-first order. Each gate gets fresh
//! columns (the root's vector is `e_0`):
//! - OR: every child gets its parent's vector `v` (Lewko–Waters).
//! - AND of n: `n - 1` fresh columns `c..c+n-1` chained as
//!   `v + e_c`, `e_{c+1} - e_c`, …, `-e_{c+n-2}`; the children's vectors sum to
//!   `v`, any `n - 1` of them are independent of it (Lewko–Waters, n-ary). Sparse,
//!   and every reconstruction coefficient is 1.
//! - k of n (1 < k < n): Shamir over `k - 1` fresh columns: child `x = 1..=n`
//!   gets `v + Σ_{j=1}^{k-1} x^j e_{c+j-1}`, i.e. its share is the value at `x`
//!   of a degree-(k-1) polynomial whose constant term is the parent's share.
//!   Any k children reconstruct with Lagrange coefficients at 0; fewer learn
//!   nothing. `k == n` compiles as AND and `k == 1` as OR.
//!
//! This needs no rewriting of thresholds into ORs of ANDs (which grows as
//! binomial(n, k)) and keeps rows and columns linear in the policy size.

use std::collections::BTreeSet;

use blstrs::Scalar;
use ff::Field;

use crate::error::{Error, Result};
use crate::policy::{Policy, PolicyNode};

/// One row of the matrix: its attribute and sparse entries `(column, value)`.
#[derive(Debug, Clone)]
pub(crate) struct Row<'a> {
    pub(crate) attribute: &'a str,
    pub(crate) entries: Vec<(usize, Scalar)>,
}

/// The compiled matrix.
#[derive(Debug, Clone)]
pub(crate) struct Lsss<'a> {
    pub(crate) rows: Vec<Row<'a>>,
    pub(crate) columns: usize,
}

/// Compiles a validated policy.
pub(crate) fn compile(policy: &Policy) -> Lsss<'_> {
    let mut out = Lsss {
        rows: Vec::with_capacity(policy.leaf_count()),
        columns: 1,
    };
    share(policy.root(), vec![(0, Scalar::ONE)], &mut out);
    out
}

fn add_entry(v: &mut Vec<(usize, Scalar)>, col: usize, value: Scalar) {
    v.push((col, value));
}

fn share<'a>(node: &'a PolicyNode, v: Vec<(usize, Scalar)>, out: &mut Lsss<'a>) {
    let children = node.children();
    let n = children.len();
    let k = node.required();
    match node {
        PolicyNode::Attr(a) => out.rows.push(Row {
            attribute: a,
            entries: v,
        }),
        _ if k == 1 => children.iter().for_each(|c| share(c, v.clone(), out)),
        _ if k == n => {
            let c0 = out.columns;
            out.columns += n - 1;
            for (i, child) in children.iter().enumerate() {
                let mut w = if i == 0 { v.clone() } else { Vec::new() };
                if i > 0 {
                    add_entry(&mut w, c0 + i - 1, -Scalar::ONE);
                }
                if i + 1 < n {
                    add_entry(&mut w, c0 + i, Scalar::ONE);
                }
                share(child, w, out);
            }
        }
        _ => {
            let c0 = out.columns;
            out.columns += k - 1;
            for (i, child) in children.iter().enumerate() {
                let x = Scalar::from(i as u64 + 1);
                let mut w = v.clone();
                let mut power = x;
                for j in 0..k - 1 {
                    add_entry(&mut w, c0 + j, power);
                    power *= x;
                }
                share(child, w, out);
            }
        }
    }
}

/// Finds rows whose span holds `e_0` for the attribute set `have`, with the
/// coefficients: `Σ γ_i · row_i = e_0`. Walks the formula tree, choosing at
/// every gate the satisfied children with the fewest leaves, so the work is
/// linear in the policy size (no Gaussian elimination, no subset search).
///
/// Returns `(row index, γ)` pairs in row order.
pub(crate) fn reconstruction(
    policy: &Policy,
    have: &BTreeSet<&str>,
) -> Result<Vec<(usize, Scalar)>> {
    let mut out = Vec::new();
    let cost = min_cost(policy.root(), have).ok_or(Error::PolicyNotSatisfied)?;
    out.reserve(cost);
    let mut next_row = 0;
    assign(policy.root(), have, Scalar::ONE, &mut next_row, &mut out)?;
    Ok(out)
}

fn leaf_count(node: &PolicyNode) -> usize {
    match node {
        PolicyNode::Attr(_) => 1,
        gate => gate.children().iter().map(leaf_count).sum(),
    }
}

/// Fewest leaves needed to satisfy `node`, or `None`.
fn min_cost(node: &PolicyNode, have: &BTreeSet<&str>) -> Option<usize> {
    match node {
        PolicyNode::Attr(a) => have.contains(a.as_str()).then_some(1),
        gate => {
            let mut costs: Vec<usize> = gate
                .children()
                .iter()
                .filter_map(|c| min_cost(c, have))
                .collect();
            let k = gate.required();
            if costs.len() < k {
                return None;
            }
            costs.sort_unstable();
            Some(costs[..k].iter().sum())
        }
    }
}

/// Assigns coefficients to the rows under `node` (whose first row is `*next_row`),
/// multiplying by `factor`; advances `*next_row` past the subtree.
fn assign(
    node: &PolicyNode,
    have: &BTreeSet<&str>,
    factor: Scalar,
    next_row: &mut usize,
    out: &mut Vec<(usize, Scalar)>,
) -> Result<()> {
    if let PolicyNode::Attr(_) = node {
        out.push((*next_row, factor));
        *next_row += 1;
        return Ok(());
    }
    let children = node.children();
    let k = node.required();
    // Choose the k cheapest satisfiable children (ties: leftmost).
    let mut ranked: Vec<(usize, usize)> = children
        .iter()
        .enumerate()
        .filter_map(|(i, c)| min_cost(c, have).map(|cost| (cost, i)))
        .collect();
    if ranked.len() < k {
        return Err(Error::PolicyNotSatisfied);
    }
    ranked.sort_unstable();
    let mut chosen: Vec<usize> = ranked[..k].iter().map(|&(_, i)| i).collect();
    chosen.sort_unstable();
    let n = children.len();
    let coefficients: Vec<Scalar> = if k == 1 || k == n {
        vec![Scalar::ONE; k]
    } else {
        lagrange_at_zero(&chosen)?
    };
    let mut pick = chosen.iter().zip(coefficients).peekable();
    for (i, child) in children.iter().enumerate() {
        match pick.peek() {
            Some(&(&c, gamma)) if c == i => {
                assign(child, have, factor * gamma, next_row, out)?;
                pick.next();
            }
            _ => *next_row += leaf_count(child),
        }
    }
    Ok(())
}

/// Lagrange coefficients at 0 for the points `x = index + 1`.
fn lagrange_at_zero(indices: &[usize]) -> Result<Vec<Scalar>> {
    let xs: Vec<Scalar> = indices
        .iter()
        .map(|&i| Scalar::from(i as u64 + 1))
        .collect();
    xs.iter()
        .enumerate()
        .map(|(i, xi)| {
            let mut num = Scalar::ONE;
            let mut den = Scalar::ONE;
            for (j, xj) in xs.iter().enumerate() {
                if i != j {
                    num *= xj;
                    den *= *xj - xi;
                }
            }
            // Distinct small points: the denominator is never zero.
            Option::<Scalar>::from(den.invert())
                .map(|inv| num * inv)
                .ok_or(Error::PolicyNotSatisfied)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Σ γ_i row_i must be e_0, using only rows whose attribute is held.
    fn check(policy: &str, have: &[&str]) -> bool {
        let p = Policy::parse(policy).unwrap();
        let m = compile(&p);
        assert_eq!(m.rows.len(), p.leaf_count());
        let set: BTreeSet<&str> = have.iter().copied().collect();
        let Ok(coeffs) = reconstruction(&p, &set) else {
            assert!(!p.is_satisfied_by(have));
            return false;
        };
        assert!(p.is_satisfied_by(have));
        let mut sum = vec![Scalar::ZERO; m.columns];
        for (row, gamma) in coeffs {
            assert!(set.contains(m.rows[row].attribute));
            for &(col, v) in &m.rows[row].entries {
                sum[col] += gamma * v;
            }
        }
        assert_eq!(sum[0], Scalar::ONE);
        assert!(m.rows.iter().map(|r| r.attribute).eq(leaves(p.root())));
        assert!(sum[1..].iter().all(|s| bool::from(s.is_zero())));
        true
    }

    fn leaves(n: &PolicyNode) -> Vec<&str> {
        match n {
            PolicyNode::Attr(a) => vec![a.as_str()],
            gate => gate.children().iter().flat_map(leaves).collect(),
        }
    }

    #[test]
    fn reconstructs_exactly_when_satisfied() {
        let p = r#"a and (b or c) and 2 of (d, e and f, g) and 3 of (k, h, i, j)"#;
        assert!(check(p, &["a", "b", "d", "g", "h", "i", "k"]));
        assert!(check(p, &["a", "c", "e", "f", "g", "h", "j", "i"]));
        assert!(!check(p, &["a", "b", "d", "e", "h", "i"]));
        assert!(!check(p, &["b", "c", "d", "g", "h", "i", "j"]));
        assert!(check("a or b and c", &["a"]));
        assert!(!check("2 of (a, b, c)", &["a"]));
    }

    /// Rank of dense rows over the scalar field (Gaussian elimination).
    fn rank(mut rows: Vec<Vec<Scalar>>) -> usize {
        let columns = rows.first().map_or(0, Vec::len);
        let mut rank = 0;
        for col in 0..columns {
            let Some(pivot) = (rank..rows.len()).find(|&r| !bool::from(rows[r][col].is_zero()))
            else {
                continue;
            };
            rows.swap(rank, pivot);
            let inv = rows[rank][col].invert().unwrap();
            let pivot_row: Vec<Scalar> = rows[rank].iter().map(|v| *v * inv).collect();
            for (r, row) in rows.iter_mut().enumerate() {
                if r != rank {
                    let f = row[col];
                    for (x, p) in row.iter_mut().zip(&pivot_row) {
                        *x -= f * p;
                    }
                }
            }
            rows[rank] = pivot_row;
            rank += 1;
        }
        rank
    }

    /// Is `e_0` in the span of the rows whose attribute is in `have`? Decided by
    /// rank, independently of [`reconstruction`]'s tree walk.
    fn e0_in_span(m: &Lsss<'_>, have: &BTreeSet<&str>) -> bool {
        let dense = |entries: &[(usize, Scalar)]| {
            let mut v = vec![Scalar::ZERO; m.columns];
            for &(c, x) in entries {
                v[c] += x;
            }
            v
        };
        let held: Vec<Vec<Scalar>> = m
            .rows
            .iter()
            .filter(|r| have.contains(r.attribute))
            .map(|r| dense(&r.entries))
            .collect();
        let mut with_target = held.clone();
        with_target.push(dense(&[(0, Scalar::ONE)]));
        rank(held) == rank(with_target)
    }

    /// Random AND / OR / k-of-n trees whose leaves are numbered apart ("a0", "a1", …).
    fn tree() -> impl proptest::strategy::Strategy<Value = PolicyNode> {
        use proptest::prelude::*;
        let leaf = Just(PolicyNode::attr("?"));
        leaf.prop_recursive(4, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..5).prop_map(PolicyNode::And),
                prop::collection::vec(inner.clone(), 1..5).prop_map(PolicyNode::Or),
                prop::collection::vec(inner, 1..6)
                    .prop_flat_map(|of| (1..=of.len(), Just(of)))
                    .prop_map(|(k, of)| PolicyNode::Threshold { k, of }),
            ]
        })
        .prop_map(|mut n| {
            fn number(n: &mut PolicyNode, next: &mut usize) {
                match n {
                    PolicyNode::Attr(a) => {
                        *a = format!("a{next}");
                        *next += 1;
                    }
                    PolicyNode::And(c)
                    | PolicyNode::Or(c)
                    | PolicyNode::Threshold { of: c, .. } => {
                        c.iter_mut().for_each(|c| number(c, next))
                    }
                }
            }
            number(&mut n, &mut 0);
            n
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// The LSSS is sound and complete: `e_0` is in the span of the held
        /// rows exactly when the boolean evaluator says the set satisfies the
        /// policy, and then [`reconstruction`] finds coefficients.
        #[test]
        fn span_contains_e0_iff_satisfied(root in tree(), bits in proptest::prelude::any::<u64>()) {
            let p = Policy::new(root).unwrap();
            let m = compile(&p);
            let names: Vec<String> = (0..p.leaf_count()).map(|i| format!("a{i}")).collect();
            let have: Vec<&str> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| bits >> (i % 64) & 1 == 1)
                .map(|(_, n)| n.as_str())
                .collect();
            let set: BTreeSet<&str> = have.iter().copied().collect();
            let satisfied = p.is_satisfied_by(&have);
            proptest::prop_assert_eq!(e0_in_span(&m, &set), satisfied, "{}", p);
            proptest::prop_assert_eq!(check(&p.to_string(), &have), satisfied);
        }
    }

    #[test]
    fn column_counts() {
        let columns = |p: &str| compile(&Policy::parse(p).unwrap()).columns;
        assert_eq!(columns("a and b and c and d"), 4);
        assert_eq!(columns("a or b or c"), 1);
        assert_eq!(columns("3 of (a, b, c, d, e)"), 3);
    }
}
