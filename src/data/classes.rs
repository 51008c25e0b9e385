//! Class protocols (19 / 16 / 13), id maps and the Cityscapes palette: the one place they live.
//!
//! Networks always predict the 19 Cityscapes trainIds; a protocol chooses which of them are
//! evaluated (SYNTHIA's 16 and 13). Ground truth of a class outside the protocol is ignored.

pub const NUM_CLASSES: usize = 19;
pub const IGNORE: u8 = 255;

pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
];

/// The standard Cityscapes colours, in trainId order.
pub const PALETTE: [[u8; 3]; NUM_CLASSES] = [
    [128, 64, 128],
    [244, 35, 232],
    [70, 70, 70],
    [102, 102, 156],
    [190, 153, 153],
    [153, 153, 153],
    [250, 170, 30],
    [220, 220, 0],
    [107, 142, 35],
    [152, 251, 152],
    [70, 130, 180],
    [220, 20, 60],
    [255, 0, 0],
    [0, 0, 142],
    [0, 0, 70],
    [0, 60, 100],
    [0, 80, 100],
    [0, 0, 230],
    [119, 11, 32],
];

/// Cityscapes labelId of each trainId.
pub const TRAIN_TO_LABEL_ID: [u8; NUM_CLASSES] =
    [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33];

/// Number of Cityscapes labelIds (0..=33); GTA5 uses the same ids as palette indices.
pub const NUM_LABEL_IDS: usize = 34;

/// Cityscapes labelIds that carry instances (instanceIds = labelId * 1000 + k for them).
pub const HAS_INSTANCES: [u8; 10] = [24, 25, 26, 27, 28, 29, 30, 31, 32, 33];

/// labelId → trainId (255 for every id that is not evaluated, including ids ≥ 34).
/// The classes one image's trainId labels contain: more than `min_fraction` of its pixels (and
/// at least one; ignored and unknown ids count toward the pixels, not toward a class).
pub fn classes_in(labels: &[i64], min_fraction: f64) -> [bool; NUM_CLASSES] {
    let mut counts = [0usize; NUM_CLASSES];
    for &v in labels {
        if (0..NUM_CLASSES as i64).contains(&v) {
            counts[v as usize] += 1;
        }
    }
    let min = (min_fraction * labels.len() as f64).max(0.0);
    counts.map(|c| c > 0 && c as f64 > min)
}

pub fn label_id_to_train_id(id: u8) -> u8 {
    TRAIN_TO_LABEL_ID.iter().position(|&l| l == id).map_or(IGNORE, |t| t as u8)
}

/// A 256-entry lookup table for [`label_id_to_train_id`], for decoding whole images fast.
pub fn label_id_lut() -> [u8; 256] {
    std::array::from_fn(|i| label_id_to_train_id(i as u8))
}

/// SYNTHIA-RAND-CITYSCAPES class id (R channel of GT/LABELS) → trainId.
pub const SYNTHIA_TO_TRAIN: [(u16, u8); 16] = [
    (3, 0),
    (4, 1),
    (2, 2),
    (21, 3),
    (5, 4),
    (7, 5),
    (15, 6),
    (9, 7),
    (6, 8),
    (1, 10),
    (10, 11),
    (17, 12),
    (8, 13),
    (19, 15),
    (12, 17),
    (11, 18),
];

/// Highest class id SYNTHIA's label set uses (0 void … 22 lanemarking).
pub const SYNTHIA_MAX_ID: u16 = 22;

pub fn synthia_id_to_train_id(id: u16) -> u8 {
    SYNTHIA_TO_TRAIN.iter().find(|(s, _)| *s == id).map_or(IGNORE, |&(_, t)| t)
}

/// SYNTHIA id of a trainId (None for terrain, truck, train: SYNTHIA has no such class).
pub fn train_id_to_synthia_id(t: u8) -> Option<u16> {
    SYNTHIA_TO_TRAIN.iter().find(|(_, tr)| *tr == t).map(|&(s, _)| s)
}

/// Which trainIds are evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub enum Protocol {
    /// All 19 Cityscapes classes (GTA5 → Cityscapes).
    P19,
    /// SYNTHIA's 16 classes (no terrain, truck, train).
    P16,
    /// SYNTHIA's 13 classes (the 16 without wall, fence, pole).
    P13,
}

impl Protocol {
    pub fn classes(self) -> &'static [u8] {
        const P19: [u8; 19] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];
        const P16: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18];
        const P13: [u8; 13] = [0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18];
        match self {
            Protocol::P19 => &P19,
            Protocol::P16 => &P16,
            Protocol::P13 => &P13,
        }
    }
    pub fn count(self) -> u32 {
        self.classes().len() as u32
    }
    pub fn contains(self, train_id: u8) -> bool {
        self.classes().contains(&train_id)
    }
    /// A per-trainId mask of evaluated classes.
    pub fn mask(self) -> [bool; NUM_CLASSES] {
        std::array::from_fn(|c| self.contains(c as u8))
    }
    pub fn from_count(n: u32) -> Option<Self> {
        match n {
            19 => Some(Protocol::P19),
            16 => Some(Protocol::P16),
            13 => Some(Protocol::P13),
            _ => None,
        }
    }
    /// The protocols worth reporting for a run evaluated under `self` (16 implies 13 as well).
    pub fn reported(self) -> &'static [Protocol] {
        match self {
            Protocol::P19 => &[Protocol::P19],
            Protocol::P16 | Protocol::P13 => &[Protocol::P16, Protocol::P13],
        }
    }
}

impl TryFrom<u32> for Protocol {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        Protocol::from_count(n).ok_or_else(|| format!("protocol must be 19, 16 or 13, not {n}"))
    }
}
impl From<Protocol> for u32 {
    fn from(p: Protocol) -> u32 {
        p.count()
    }
}
impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_train_ids_round_trip() {
        for t in 0..NUM_CLASSES as u8 {
            assert_eq!(label_id_to_train_id(TRAIN_TO_LABEL_ID[t as usize]), t);
        }
        // Cityscapes ids that are not evaluated.
        for id in [0u8, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 200, 255] {
            assert_eq!(label_id_to_train_id(id), IGNORE, "labelId {id}");
        }
        assert_eq!(label_id_lut()[26], 13);
    }

    #[test]
    fn synthia_map_matches_the_documented_table() {
        assert_eq!(synthia_id_to_train_id(3), 0); // road
        assert_eq!(synthia_id_to_train_id(2), 2); // building
        assert_eq!(synthia_id_to_train_id(1), 10); // sky
        assert_eq!(synthia_id_to_train_id(11), 18); // bicycle
        assert_eq!(synthia_id_to_train_id(0), IGNORE);
        assert_eq!(synthia_id_to_train_id(13), IGNORE); // parking-slot
        for t in [9u8, 14, 16] {
            assert_eq!(train_id_to_synthia_id(t), None);
        }
        // the SYNTHIA map covers exactly the 16-class protocol
        let mut covered: Vec<u8> = SYNTHIA_TO_TRAIN.iter().map(|p| p.1).collect();
        covered.sort();
        assert_eq!(covered, Protocol::P16.classes());
    }

    #[test]
    fn protocols() {
        assert_eq!(Protocol::P19.count(), 19);
        assert_eq!(Protocol::P16.count(), 16);
        assert_eq!(Protocol::P13.count(), 13);
        for c in [3u8, 4, 5] {
            assert!(Protocol::P16.contains(c) && !Protocol::P13.contains(c));
        }
        assert!(Protocol::try_from(17).is_err());
    }
}
