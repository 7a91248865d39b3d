-- A session whose last turn proposed a write waits for the customer's consent: its next message
-- resumes the graph's interrupt instead of starting a new turn.
ALTER TABLE interactions ADD COLUMN awaiting_consent boolean NOT NULL DEFAULT false;
