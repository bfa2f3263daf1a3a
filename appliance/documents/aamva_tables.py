"""Reference tables for AAMVA DL/ID PDF417 payloads: element names and issuer IINs.

Element IDs follow the AAMVA DL/ID Card Design Standard, Annex D (D.12.5,
"Data elements"), across versions 01 (DL/ID-2000) to 11 (CDS 2025). A few IDs
changed meaning after version 01; :func:`element_name` knows which.

The IIN list is AAMVA's "Issuer Identification Numbers" register (ISO/IEC 7812
numbers assigned to jurisdictions), as mirrored by public parsers.
"""

from __future__ import annotations

# Element ID -> human name, meaning in versions 02-11. IDs only defined by
# version 01 are marked "(v1)"; version 11 (CDS 2025) added DDM-DDP.
ELEMENT_NAMES: dict[str, str] = {
    "DAA": "Full name (v1)",
    "DAB": "Family name (v1)",
    "DAC": "First name",
    "DAD": "Middle name(s)",
    "DAE": "Name suffix (v1)",
    "DAF": "Name prefix (v1)",
    "DAG": "Address street 1",
    "DAH": "Address street 2",
    "DAI": "Address city",
    "DAJ": "Address jurisdiction code",
    "DAK": "Address postal code",
    "DAL": "Residence street 1 (v1)",
    "DAM": "Residence street 2 (v1)",
    "DAN": "Residence city (v1)",
    "DAO": "Residence jurisdiction code (v1)",
    "DAP": "Residence postal code (v1)",
    "DAQ": "Customer ID number",
    "DAR": "Licence classification code (v1)",
    "DAS": "Licence restriction code (v1)",
    "DAT": "Licence endorsements code (v1)",
    "DAU": "Height",
    "DAV": "Height in centimetres (v1)",
    "DAW": "Weight in pounds",
    "DAX": "Weight in kilograms",
    "DAY": "Eye colour",
    "DAZ": "Hair colour",
    "DBA": "Document expiration date",
    "DBB": "Date of birth",
    "DBC": "Sex",
    "DBD": "Document issue date",
    "DBE": "Issue timestamp (v1)",
    "DBF": "Number of duplicates (v1)",
    "DBG": "Alias given name",
    "DBH": "Organ donor (v1)",
    "DBI": "Non-resident indicator (v1)",
    "DBJ": "Unique customer identifier (v1)",
    "DBK": "Social security number (v1)",
    "DBL": "Alias date of birth (v1)",
    "DBM": "Alias social security number (v1)",
    "DBN": "Alias family name",
    "DBO": "Alias last name (v1)",
    "DBP": "Alias given name (v1)",
    "DBQ": "Alias middle name (v1)",
    "DBR": "Alias suffix (v1)",
    "DBS": "Alias suffix name",
    "DCA": "Jurisdiction vehicle class",
    "DCB": "Jurisdiction restriction codes",
    "DCD": "Jurisdiction endorsement codes",
    "DCE": "Weight range",
    "DCF": "Document discriminator",
    "DCG": "Country identification",
    "DCH": "Federal commercial vehicle codes",
    "DCI": "Place of birth",
    "DCJ": "Audit information",
    "DCK": "Inventory control number",
    "DCL": "Race / ethnicity",
    "DCM": "Standard vehicle classification",
    "DCN": "Standard endorsement code",
    "DCO": "Standard restriction code",
    "DCP": "Jurisdiction vehicle classification description",
    "DCQ": "Jurisdiction endorsement code description",
    "DCR": "Jurisdiction restriction code description",
    "DCS": "Family name",
    "DCT": "Given names (v2-v3)",
    "DCU": "Name suffix",
    "DDA": "Compliance type",
    "DDB": "Card revision date",
    "DDC": "HAZMAT endorsement expiration date",
    "DDD": "Limited duration document indicator",
    "DDE": "Family name truncation",
    "DDF": "First name truncation",
    "DDG": "Middle name truncation",
    "DDH": "Under 18 until",
    "DDI": "Under 19 until",
    "DDJ": "Under 21 until",
    "DDK": "Organ donor indicator",
    "DDL": "Veteran indicator",
    # CDS 2025 (version 11) document-type indicators, each "1" or absent.
    "DDM": "Commercial credential (CDL/CLP) indicator",
    "DDN": "Non-domiciled indicator",
    "DDO": "Enhanced credential (EDL/EID) indicator",
    "DDP": "Permit indicator",
    # DL/ID-2000 learner's permit elements.
    "PAA": "Permit classification code (v1)",
    "PAB": "Permit expiration date (v1)",
    "PAC": "Permit identifier (v1)",
    "PAD": "Permit issue date (v1)",
    "PAE": "Permit restriction code (v1)",
    "PAF": "Permit endorsement code (v1)",
}

# IDs that meant something else in version 01 (DL/ID-2000).
V1_ELEMENT_NAMES: dict[str, str] = {
    "DAQ": "Licence or ID number",
    "DAU": "Height (ft/in)",
    "DBG": "Medical indicator / codes",
    "DBN": "Alias full name",
    "DBS": "Alias name prefix",
}

KNOWN_ELEMENT_IDS: frozenset[str] = frozenset(ELEMENT_NAMES)

# Canadian cards write CCYYMMDD; US cards MMDDCCYY (Annex D, D.12.5 date fields).
DATE_FORMAT_BY_COUNTRY: dict[str, str] = {"USA": "MMDDCCYY", "CAN": "CCYYMMDD"}

# DCG country identification as written on cards -> ISO 3166-1 alpha-3.
COUNTRY_CODES: dict[str, str] = {"USA": "USA", "CAN": "CAN", "CDN": "CAN", "MEX": "MEX"}


def element_name(element_id: str, version: int | None = None) -> str:
    """Human name of an element ID as the given AAMVA version defines it."""
    if version == 1 and element_id in V1_ELEMENT_NAMES:
        return V1_ELEMENT_NAMES[element_id]
    if element_id in ELEMENT_NAMES:
        return ELEMENT_NAMES[element_id]
    if element_id.startswith("Z"):
        return "Jurisdiction-specific element"
    return "Unknown element"


# IIN -> (jurisdiction code, ISO 3166-1 alpha-3 country, issuer name).
# The US Department of State (diplomatic licences) has no jurisdiction code.
# Mexican state codes are ISO 3166-2:MX subdivision codes (not confirmed by AAMVA).
IIN_TABLE: dict[str, tuple[str | None, str, str]] = {
    "604426": ("PE", "CAN", "Prince Edward Island"),
    "604427": ("AS", "USA", "American Samoa"),
    "604428": ("QC", "CAN", "Quebec"),
    "604429": ("YT", "CAN", "Yukon"),
    "604430": ("MP", "USA", "Northern Mariana Islands"),
    "604431": ("PR", "USA", "Puerto Rico"),
    "604432": ("AB", "CAN", "Alberta"),
    "604433": ("NU", "CAN", "Nunavut"),
    "604434": ("NT", "CAN", "Northwest Territories"),
    "636000": ("VA", "USA", "Virginia"),
    "636001": ("NY", "USA", "New York"),
    "636002": ("MA", "USA", "Massachusetts"),
    "636003": ("MD", "USA", "Maryland"),
    "636004": ("NC", "USA", "North Carolina"),
    "636005": ("SC", "USA", "South Carolina"),
    "636006": ("CT", "USA", "Connecticut"),
    "636007": ("LA", "USA", "Louisiana"),
    "636008": ("MT", "USA", "Montana"),
    "636009": ("NM", "USA", "New Mexico"),
    "636010": ("FL", "USA", "Florida"),
    "636011": ("DE", "USA", "Delaware"),
    "636012": ("ON", "CAN", "Ontario"),
    "636013": ("NS", "CAN", "Nova Scotia"),
    "636014": ("CA", "USA", "California"),
    "636015": ("TX", "USA", "Texas"),
    "636016": ("NL", "CAN", "Newfoundland and Labrador"),
    "636017": ("NB", "CAN", "New Brunswick"),
    "636018": ("IA", "USA", "Iowa"),
    "636019": ("GU", "USA", "Guam"),
    "636020": ("CO", "USA", "Colorado"),
    "636021": ("AR", "USA", "Arkansas"),
    "636022": ("KS", "USA", "Kansas"),
    "636023": ("OH", "USA", "Ohio"),
    "636024": ("VT", "USA", "Vermont"),
    "636025": ("PA", "USA", "Pennsylvania"),
    "636026": ("AZ", "USA", "Arizona"),
    "636027": (None, "USA", "US Department of State"),
    "636028": ("BC", "CAN", "British Columbia"),
    "636029": ("OR", "USA", "Oregon"),
    "636030": ("MO", "USA", "Missouri"),
    "636031": ("WI", "USA", "Wisconsin"),
    "636032": ("MI", "USA", "Michigan"),
    "636033": ("AL", "USA", "Alabama"),
    "636034": ("ND", "USA", "North Dakota"),
    "636035": ("IL", "USA", "Illinois"),
    "636036": ("NJ", "USA", "New Jersey"),
    "636037": ("IN", "USA", "Indiana"),
    "636038": ("MN", "USA", "Minnesota"),
    "636039": ("NH", "USA", "New Hampshire"),
    "636040": ("UT", "USA", "Utah"),
    "636041": ("ME", "USA", "Maine"),
    "636042": ("SD", "USA", "South Dakota"),
    "636043": ("DC", "USA", "District of Columbia"),
    "636044": ("SK", "CAN", "Saskatchewan"),
    "636045": ("WA", "USA", "Washington"),
    "636046": ("KY", "USA", "Kentucky"),
    "636047": ("HI", "USA", "Hawaii"),
    "636048": ("MB", "CAN", "Manitoba"),
    "636049": ("NV", "USA", "Nevada"),
    "636050": ("ID", "USA", "Idaho"),
    "636051": ("MS", "USA", "Mississippi"),
    "636052": ("RI", "USA", "Rhode Island"),
    "636053": ("TN", "USA", "Tennessee"),
    "636054": ("NE", "USA", "Nebraska"),
    "636055": ("GA", "USA", "Georgia"),
    "636056": ("COA", "MEX", "Coahuila"),
    "636057": ("HID", "MEX", "Hidalgo"),
    "636058": ("OK", "USA", "Oklahoma"),
    "636059": ("AK", "USA", "Alaska"),
    "636060": ("WY", "USA", "Wyoming"),
    "636061": ("WV", "USA", "West Virginia"),
    "636062": ("VI", "USA", "US Virgin Islands"),
    "990876": ("AB", "CAN", "Alberta (non-ISO IIN)"),
}
