"""The EasyEdu CRM: an extension of the runner (customers, staff, bookings, transports, demo)."""
