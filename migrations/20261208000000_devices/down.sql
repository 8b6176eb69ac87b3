DROP TABLE address_slots;
DROP TABLE devices;
